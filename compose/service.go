package compose

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/pkgenv"
	"github.com/opsdev/ops/qemu"
)

// ServiceConfig is the config a replica runs with: its x-ops config file,
// then the service's own keys over it (command added to the arguments,
// environment, working folder, memory, vCPUs and volumes set), then its
// guest (or the project's default guest).
func (f *File) serviceConfig(r Replica, defaultGuest string) (*lepton.Config, error) {
	s := f.Services[r.Service]
	cfgPath := s.Config
	if cfgPath != "" && !filepath.IsAbs(cfgPath) {
		cfgPath = filepath.Join(f.Dir, cfgPath)
	}
	c, err := lepton.LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	if s.Image == "" {
		c.Args = append(c.Args, s.Command...)
	}
	if c.Env == nil {
		c.Env = map[string]string{}
	}
	for k, v := range s.Env {
		c.Env[k] = v
	}
	if s.WorkingDir != "" {
		c.CwdPath = s.WorkingDir
	}
	if s.Memory != "" {
		c.RunConfig.Memory = s.Memory
	}
	if s.CPUs > 0 {
		c.RunConfig.CPUs = s.CPUs
	}
	for _, m := range s.Mounts {
		if c.Mounts == nil {
			c.Mounts = map[string]string{}
		}
		p := m.Path
		if m.ReadOnly {
			p += ":ro"
		}
		c.Mounts[f.volumeName(m.Volume)] = p
	}
	for _, b := range s.Binds {
		if b.File {
			continue // copied into the image (fileBinds)
		}
		if c.Mounts == nil {
			c.Mounts = map[string]string{}
		}
		p := b.Target
		if b.ReadOnly {
			p += ":ro"
		}
		c.Mounts[b.Source] = p // a host folder shared with the guest
	}
	if s.Arch != "" {
		if c.Arch != "" {
			if a, err := c.Target(); err != nil || string(a) != s.Arch {
				return nil, fmt.Errorf("platform: linux/%s, but its config (%s) says Arch %s", s.Arch, cfgPath, c.Arch)
			}
		}
		c.Arch = s.Arch
	}
	switch {
	case s.Guest != "":
		c.Guest = s.Guest
	case defaultGuest != "":
		c.Guest = defaultGuest
	}
	// The others reach the service by its name, which resolves in its own
	// /etc/hosts; each replica has a host name of its own.
	c.Hostname = r.Hostname
	return c, nil
}

// service is one replica ready to start: its built image, its network
// and its machine.
type service struct {
	Replica
	built   *lepton.Built
	net     qemu.Net
	machine *lepton.Machine
	config  *lepton.Config
}

// prepare builds one replica's image and describes its VM.
func (u *up) prepare(r Replica, index int) (*service, error) {
	c, err := u.file.serviceConfig(r, u.opts.Guest)
	if err != nil {
		return nil, err
	}
	selfAddr := "10.0.2.15"
	if u.layout.Mode == Bridged {
		selfAddr = u.layout.ReplicaAddr[r.Instance]
		ones, _ := u.layout.Subnet.Mask.Size()
		c.RunConfig.IPAddress = selfAddr
		c.RunConfig.NetMask = net.IP(net.CIDRMask(ones, 32)).String()
		c.RunConfig.Gateway = u.layout.Gateway
		c.RunConfig.TapName = tapName(u.file.Name, index)
	}
	in, err := u.planInput(r.Service, c)
	if err != nil {
		return nil, err
	}
	in.OpsVersion = u.opts.OpsVersion
	in.Extra = []opsfs.Entry{
		{Path: "/etc/hosts", Kind: opsfs.KindFile, Data: u.layout.hosts(r, selfAddr)},
		{Path: "/etc/nsswitch.conf", Kind: opsfs.KindFile, Data: []byte("hosts: files dns\n")},
	}
	files, err := u.fileBinds(r)
	if err != nil {
		return nil, err
	}
	in.Extra = append(in.Extra, files...)
	b, err := u.opts.Builder.Build(u.opts.Home, in, lepton.Target{DefaultName: r.Instance})
	if err != nil {
		return nil, err
	}
	off := false
	if !u.opts.Accel {
		c.RunConfig.Accel = &off // where an instance's supervisor reads it too
	}
	if u.opts.NoSnapshot {
		c.RunConfig.Snapshot = &off
	}
	n, err := c.RunConfig.Net()
	if err != nil {
		return nil, err
	}
	switch {
	case u.layout.Namespace:
		n = u.nsNet(r)
	case u.layout.Mode == UserMode:
		n = u.userNet(r)
	default:
		n.MAC = fmt.Sprintf("52:54:00:4f:50:%02x", index+16)
	}
	s := &service{Replica: r, built: b, net: n, config: c}
	s.machine = &lepton.Machine{Built: b, RunConfig: c.RunConfig, Net: &s.net, Accel: u.opts.ForceAccel, Home: u.opts.Home,
		Say: func(line string) { u.opts.Say(fmt.Sprintf("[%s] %s", r.Service, line)) }, Verbose: u.opts.Verbose}
	if err := s.machine.Check(); err != nil {
		return nil, err
	}
	c.Guest = b.Guest.Name()
	return s, nil
}

// planInput is a service's program: an image (made into a package), a
// package (both found by packages before), or an ELF named relative to
// the compose file's folder.
func (u *up) planInput(name string, c *lepton.Config) (lepton.PlanInput, error) {
	s := u.file.Services[name]
	if s.Image != "" || s.Package != "" {
		dir, ok := u.images[name]
		if !ok {
			return lepton.PlanInput{}, fmt.Errorf("the package of service %s was not resolved", name)
		}
		return pkgenv.Plan(dir, c, u.file.Dir)
	}
	prog := s.Program
	if !filepath.IsAbs(prog) {
		prog = filepath.Join(u.file.Dir, prog)
	}
	return lepton.PlanInput{Config: c, Program: prog, Dir: u.file.Dir, Argv: []string{s.Program}}, nil
}

// userNet is a user-mode replica's network without the project's
// namespace (--host-loopback, or no passt or namespaces on the host): its
// own ports forwarded from their host ports, and every other service's
// ports reached through a per-connection ops proxy, which asks the
// project's Balancer which replica to join.
//
// QEMU's own network, because its guestfwd is what lets one address per
// service lead to that service; restricted (restrict=on) unless the
// project asks for the host's loopback: the guest then reaches the other
// services and its own forwards, and neither the host's 127.0.0.1 (which
// 10.0.2.2 is on an unrestricted slirp) nor anything else.
func (u *up) userNet(r Replica) qemu.Net {
	n := qemu.Net{Mode: "user", Restrict: !u.opts.HostLoopback}
	type key struct {
		svc  string
		port int
	}
	seen := map[key]bool{}
	for _, e := range u.layout.Endpoints {
		if e.Instance == r.Instance {
			n.Forwards = append(n.Forwards, qemu.Forward{Proto: "tcp", HostIP: e.HostIP, HostPort: e.HostPort, GuestPort: e.Port})
			continue
		}
		k := key{e.Service, e.Port}
		if e.Service == r.Service || seen[k] {
			continue
		}
		seen[k] = true
		n.GuestFwd = append(n.GuestFwd, qemu.GuestFwd{IP: u.layout.Addr[e.Service], Port: e.Port,
			Cmd: proxyCommand(u.opts.Self, u.dir, e.Service, e.Port)})
	}
	return n
}

// proxyCommand is the command QEMU runs for each guest connection to
// service:port: ops proxy, which asks the Balancer of the project whose
// state is in dir for a replica and joins the connection to it.
func proxyCommand(self, dir, service string, port int) string {
	return fmt.Sprintf("%s proxy --project %s %s:%s", self, dir, service, strconv.Itoa(port))
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

// fileBinds are the host files a replica's service binds, as entries of
// its image: a VM shares folders, not single files, so each is copied in
// when the image is built. A writable one is said once: what the guest
// writes to it stays in the VM.
func (u *up) fileBinds(r Replica) ([]opsfs.Entry, error) {
	var out []opsfs.Entry
	for _, b := range u.file.Services[r.Service].Binds {
		if !b.File {
			continue
		}
		st, err := os.Stat(b.Source)
		if err != nil {
			return nil, fmt.Errorf("service %s: volumes %s: %w", r.Service, b.Source, err)
		}
		if !b.ReadOnly && r.Index == 0 {
			u.opts.Say(fmt.Sprintf("compose %s: service %s: %s is copied into its image at %s (a VM shares folders, not single files): the guest's writes to it stay in the VM", u.file.Name, r.Service, b.Source, b.Target))
		}
		out = append(out, opsfs.Entry{Path: b.Target, Kind: opsfs.KindFile, Source: b.Source, Size: st.Size(), Mode: st.Mode().Perm()})
	}
	return out, nil
}
