package compose

import (
	"fmt"
	"net"
	"path/filepath"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
)

// ServiceConfig is the config a service runs with: its config file, then
// the service's own keys over it (args added, env and memory set), then
// its guest (or the project's default guest).
func (f *File) ServiceConfig(name, defaultGuest string) (*lepton.Config, error) {
	s := f.Services[name]
	cfgPath := s.Config
	if cfgPath != "" && !filepath.IsAbs(cfgPath) {
		cfgPath = filepath.Join(f.Dir, cfgPath)
	}
	c, err := lepton.LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	c.Args = append(c.Args, s.Args...)
	if c.Env == nil {
		c.Env = map[string]string{}
	}
	for k, v := range s.Env {
		c.Env[k] = v
	}
	if s.Memory != "" {
		c.RunConfig.Memory = s.Memory
	}
	switch {
	case s.Guest != "":
		c.Guest = s.Guest
	case defaultGuest != "":
		c.Guest = defaultGuest
	}
	// The service's name is its host name: the others reach it by that
	// name, and it resolves in its own /etc/hosts.
	if c.Hostname == "" {
		c.Hostname = name
	}
	return c, nil
}

// service is one service ready to start: its built image and its VM.
type service struct {
	name   string
	built  *lepton.Built
	vm     qemu.VM
	config *lepton.Config
}

// prepare builds one service's image and describes its VM.
func (u *up) prepare(name string, index int) (*service, error) {
	c, err := u.file.ServiceConfig(name, u.opts.Guest)
	if err != nil {
		return nil, err
	}
	selfAddr := "10.0.2.15"
	if u.layout.Mode == Bridged {
		selfAddr = u.layout.Addr[name]
		ones, _ := u.layout.Subnet.Mask.Size()
		c.RunConfig.IPAddress = selfAddr
		c.RunConfig.NetMask = net.IP(net.CIDRMask(ones, 32)).String()
		c.RunConfig.Gateway = u.layout.Gateway
		c.RunConfig.TapName = tapName(u.file.Name, index)
	}
	in, err := u.planInput(name, c)
	if err != nil {
		return nil, err
	}
	in.OpsVersion = u.opts.OpsVersion
	in.Extra = []opsfs.Entry{
		{Path: "/etc/hosts", Kind: opsfs.KindFile, Data: u.layout.Hosts(name, selfAddr)},
		{Path: "/etc/nsswitch.conf", Kind: opsfs.KindFile, Data: []byte("hosts: files dns\n")},
	}
	b, err := lepton.Build(u.opts.Home, in, lepton.Target{DefaultName: u.file.Name + "-" + name})
	if err != nil {
		return nil, err
	}
	vm, err := b.Guest.VM(lepton.Boot{Image: b.BuildResult, Run: c.RunConfig, Accel: u.accel})
	if err != nil {
		return nil, err
	}
	if u.layout.Mode == UserMode {
		vm.Net = u.userNet(name)
	} else {
		vm.Net.MAC = fmt.Sprintf("52:54:00:4f:50:%02x", index+16)
	}
	c.Guest = b.Guest.Name()
	return &service{name: name, built: b, vm: vm, config: c}, nil
}

// planInput is a service's program: a package, or an ELF named relative
// to the compose file's folder.
func (u *up) planInput(name string, c *lepton.Config) (lepton.PlanInput, error) {
	s := u.file.Services[name]
	if s.Package != "" {
		if u.opts.ResolvePackage == nil {
			return lepton.PlanInput{}, fmt.Errorf("package %s: packages cannot be resolved here", s.Package)
		}
		dir, err := u.opts.ResolvePackage(s.Package, s.Local, c)
		if err != nil {
			return lepton.PlanInput{}, err
		}
		return lepton.PackagePlan(dir, c, u.file.Dir)
	}
	prog := s.Program
	if !filepath.IsAbs(prog) {
		prog = filepath.Join(u.file.Dir, prog)
	}
	return lepton.PlanInput{Config: c, Program: prog, Dir: u.file.Dir, Argv: []string{s.Program}}, nil
}

// userNet is a user-mode service's network: its own ports forwarded from
// their host ports, and every other service's ports reached through a
// per-connection proxy to that service's host port.
func (u *up) userNet(name string) qemu.Net {
	n := qemu.Net{Mode: "user"}
	for _, e := range u.layout.Endpoints {
		if e.Service == name {
			n.Forwards = append(n.Forwards, qemu.Forward{Proto: "tcp", HostIP: "127.0.0.1", HostPort: e.HostPort, GuestPort: e.Port})
			continue
		}
		n.GuestFwd = append(n.GuestFwd, qemu.GuestFwd{IP: u.layout.Addr[e.Service], Port: e.Port,
			Cmd: fmt.Sprintf("%s proxy 127.0.0.1:%d", u.opts.Self, e.HostPort)})
	}
	return n
}

func tapName(project string, i int) string {
	return truncate(fmt.Sprintf("ops%d-%s", i, project), 15)
}

func bridgeName(project string) string {
	return truncate("opsbr-"+project, 15)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
