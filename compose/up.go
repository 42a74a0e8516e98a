package compose

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/internal/splice"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/netlink"
	"github.com/opsdev/ops/qemu"
)

// UpOptions is how a project runs in the foreground.
type UpOptions struct {
	Home    lepton.Home
	Mode    Mode
	Subnet  string // the bridge's subnet in Bridged mode
	Accel   bool   // allow KVM where it really works
	Guest   string // guest of every service that names none
	Verbose bool   // Say each QEMU command line
	Self    string // ops's own executable, which QEMU runs as the per-connection proxy
	// OpsVersion is OPS_VERSION in every service's environment.
	OpsVersion string
	// The services' consoles, each line prefixed with [service].
	Stdout, Stderr io.Writer
	// ResolvePackage finds (or downloads) a package's folder.
	ResolvePackage func(name string, local bool, c *lepton.Config) (string, error)
	// Say takes compose's own lines: the guest note, the services up,
	// each service's exit.
	Say func(line string)
	// Detach leaves the services running as instances named
	// <project>-<service> (user-mode networking only).
	Detach bool
}

// up is one run of a project.
type up struct {
	file   *File
	opts   UpOptions
	layout *Net
	accel  qemu.Accel
}

// Up builds every service, starts them all and waits until ctx ends
// (Ctrl-C: every VM stops, exit code 0) or every service exits; the exit
// code is then the first non-zero one among them. Whatever Up made (taps,
// a bridge, forwards) is removed when it returns.
func Up(ctx context.Context, file *File, o UpOptions) (int, error) {
	if o.Say == nil {
		o.Say = func(string) {}
	}
	layout, err := file.Layout(o.Mode, o.Subnet, freePort)
	if err != nil {
		return 0, err
	}
	accel, _ := qemu.DecideAccel(qemu.HostProbe(o.Accel))
	u := &up{file: file, opts: o, layout: layout, accel: accel}
	var svcs []*service
	for i, name := range file.Names() {
		s, err := u.prepare(name, i)
		if err != nil {
			return 0, fmt.Errorf("service %s: %w", name, err)
		}
		if i == 0 && s.built.Note != "" {
			o.Say(s.built.Note)
		}
		svcs = append(svcs, s)
	}
	if o.Detach {
		if layout.Mode == Bridged {
			return 0, errors.New("compose up -d runs services as instances with user-mode networking; --bridged runs in the foreground")
		}
		return 0, u.detach(svcs)
	}
	if layout.Mode == Bridged {
		remove, err := u.bridge(svcs)
		defer remove()
		if err != nil {
			return 0, err
		}
	}
	for _, s := range svcs {
		if err := qemu.CheckFree(s.vm.Net.Forwards); err != nil {
			return 0, fmt.Errorf("service %s: %w", s.name, err)
		}
	}
	return u.run(ctx, svcs)
}

// run starts every service's VM and waits for them.
func (u *up) run(ctx context.Context, svcs []*service) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// On an early return, the VMs already started stop before Up returns.
	defer func() { cancel(); wg.Wait() }()
	var mu sync.Mutex
	exit := 0
	for _, s := range svcs {
		argv, err := s.vm.Args()
		if err != nil {
			return 0, fmt.Errorf("service %s: %w", s.name, err)
		}
		if u.opts.Verbose {
			u.opts.Say(fmt.Sprintf("[%s] %s", s.name, qemu.ShellLine(argv)))
		}
		p, err := qemu.Start(argv, s.vm.Pages, prefixWriter(u.opts.Stdout, s.name), prefixWriter(u.opts.Stderr, s.name))
		if err != nil {
			return 0, err
		}
		wg.Add(1)
		go func(s *service) {
			defer wg.Done()
			res := p.Wait(ctx)
			if res.Stopped {
				return
			}
			code, err := res.GuestExitCode()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				u.opts.Say(fmt.Sprintf("[%s] %v", s.name, err))
				exit = 1
				return
			}
			u.opts.Say(fmt.Sprintf("[%s] exited with %d", s.name, code))
			if code != 0 && exit == 0 {
				exit = code
			}
		}(s)
	}
	line := fmt.Sprintf("compose %s: %d services up", u.file.Name, len(svcs))
	for _, s := range svcs {
		for _, e := range u.file.Published(u.layout, s.name) {
			line += fmt.Sprintf("; %s on 127.0.0.1:%d", s.name, e.HostPort)
		}
	}
	u.opts.Say(line)
	wg.Wait()
	if ctx.Err() != nil {
		return 0, nil
	}
	return exit, nil
}

// bridge makes the project's bridge (with the gateway's address), a tap
// per service on it, and the forwards of published ports to the services'
// addresses; remove undoes all of it.
func (u *up) bridge(svcs []*service) (remove func(), err error) {
	l, err := netlink.OpenLinks()
	if err != nil {
		return func() {}, err
	}
	var stops []func()
	remove = func() {
		for _, s := range stops {
			s()
		}
		l.Remove()
	}
	br := bridgeName(u.file.Name)
	if _, err := netlink.IfIndex(br); err == nil {
		return remove, fmt.Errorf("bridge %s already exists: is project %s up already?", br, u.file.Name)
	}
	bi, err := l.Bridge(br)
	if err != nil {
		return remove, err
	}
	ones, _ := u.layout.Subnet.Mask.Size()
	gw, err := netip.ParseAddr(u.layout.Gateway)
	if err != nil {
		return remove, err
	}
	if err := l.AddAddr(bi, netip.PrefixFrom(gw, ones)); err != nil {
		return remove, fmt.Errorf("address on %s: %w", br, err)
	}
	for _, s := range svcs {
		ti, err := l.Tap(s.vm.Net.Tap)
		if err != nil {
			return remove, err
		}
		if err := l.Attach(ti, bi); err != nil {
			return remove, err
		}
		for _, e := range u.file.Published(u.layout, s.name) {
			listen := fmt.Sprintf("127.0.0.1:%d", e.HostPort)
			stop, err := splice.Forward(listen, net.JoinHostPort(u.layout.Addr[s.name], strconv.Itoa(e.Port)))
			if err != nil {
				return remove, fmt.Errorf("publishing %s: %w", listen, err)
			}
			stops = append(stops, stop)
		}
	}
	return remove, nil
}

// detach creates and starts an instance per service; on a failure the
// ones already started are stopped and removed.
func (u *up) detach(svcs []*service) (err error) {
	store := instance.NewStore(u.opts.Home)
	var made []string
	defer func() {
		if err != nil {
			for _, n := range made {
				store.Stop(n, 0)
				store.Delete(n)
			}
		}
	}()
	for _, s := range svcs {
		name := InstanceName(u.file.Name, s.name)
		net := s.vm.Net
		spec := instance.Spec{Name: name, Image: s.built.Path, Config: *s.config, Restart: instance.Policy{Mode: "no"},
			Created: time.Now().UTC(), Net: &net, Project: u.file.Name}
		if err := store.Create(spec); err != nil {
			return fmt.Errorf("service %s: %w (is project %s up already?)", s.name, err, u.file.Name)
		}
		made = append(made, name)
		if _, err := store.Start(u.opts.Self, name); err != nil {
			return fmt.Errorf("service %s: %w", s.name, err)
		}
	}
	line := fmt.Sprintf("compose %s: %d services up as instances (ops instance list; ops compose down stops them)", u.file.Name, len(svcs))
	for _, s := range svcs {
		for _, e := range u.file.Published(u.layout, s.name) {
			line += fmt.Sprintf("; %s on 127.0.0.1:%d", s.name, e.HostPort)
		}
	}
	u.opts.Say(line)
	return nil
}

// InstanceName is the instance a project's service runs as with up -d.
func InstanceName(project, service string) string { return project + "-" + service }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// prefixWriter prefixes every line written to it with [name].
func prefixWriter(w io.Writer, name string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(w, "[%s] %s\n", name, sc.Text())
		}
	}()
	return pw
}
