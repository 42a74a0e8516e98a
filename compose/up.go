package compose

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/internal/splice"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/netlink"
	"github.com/opsdev/ops/pkgenv"
	"github.com/opsdev/ops/qemu"
)

// UpOptions is how a project runs.
type UpOptions struct {
	Home   lepton.Home
	Mode   Mode
	Subnet string // the bridge's subnet in Bridged mode
	Accel  bool   // allow KVM where it really works
	// ForceAccel, when set, is the accelerator to use without probing
	// the host (OPS_ACCEL), for the services run here (--bridged); an
	// instance's supervisor reads it itself.
	ForceAccel qemu.Accel
	Guest      string // guest of every service that names none
	Verbose    bool   // Say each QEMU command line
	Self       string // ops's own executable: the supervisor and the per-connection proxy
	// HostLoopback, in user mode, lets guests reach the host's 127.0.0.1
	// at 10.0.2.2 and make outbound connections (QEMU's own network
	// unrestricted). By default a service reaches the other services by
	// name and nothing else (restrict=on).
	HostLoopback bool
	// NoSnapshot boots every service cold (RunConfig.Snapshot false), also
	// when an instance's supervisor restarts it.
	NoSnapshot bool
	// OpsVersion is OPS_VERSION in every service's environment.
	OpsVersion string
	// The services' consoles, each line prefixed with the replica's name.
	Stdout, Stderr io.Writer
	// Packages is where the services' packages come from (found or
	// downloaded) and their images are made into local packages, each
	// image once. Nil: a service with a package or an image is an error.
	Packages *pkgenv.Env
	// Builder builds the services' images: the process's one, so they
	// hold the collector back in turn with its other builds (nil: a
	// Builder of up's own).
	Builder *lepton.Builder
	// Say takes compose's own lines: the guest note, the services up,
	// each service's exit.
	Say func(line string)
	// Detach leaves the services running as instances (user-mode
	// networking only); without it, up follows their logs until Ctrl-C
	// or until every one has exited, then removes them.
	Detach bool
	// VolumeSize is the size of a named volume up creates (default 1 GiB).
	VolumeSize int64
}

// up is one run of a project.
type up struct {
	file   *File
	opts   UpOptions
	layout *Net
	dir    string            // the project's state folder
	images map[string]string // service -> folder of its package (or its image's)
	store  instance.Store
}

// stateDir is a project's state folder: <ops home>/compose/<name>.
func stateDir(home lepton.Home, name string) string {
	return home.ComposeDir(name)
}

// Up builds every service, then starts each (after the services it
// depends on are started, healthy or completed, as depends_on says).
// Nothing starts until every image is built and every port checked; on
// a failure after that, what was started is stopped and removed. With
// Detach it returns once all are started; else it follows their logs
// until ctx ends (exit code 0) or every service exits (the first
// non-zero exit code), and removes them.
func Up(ctx context.Context, file *File, o UpOptions) (int, error) {
	if o.Say == nil {
		o.Say = func(string) {}
	}
	if o.Builder == nil {
		o.Builder = &lepton.Builder{}
	}
	order, err := file.order()
	if err != nil {
		return 0, err
	}
	layout, err := file.layout(o.Mode, o.Subnet, qemu.FreePort)
	if err != nil {
		return 0, err
	}
	u := &up{file: file, opts: o, layout: layout, dir: stateDir(o.Home, file.Name),
		images: map[string]string{}, store: instance.NewStore(o.Home)}
	// One up of a project at a time, until its services are started.
	unlock, err := lockProject(o.Home, file.Name)
	if err != nil {
		return 0, err
	}
	var unlockOnce sync.Once
	release := func() { unlockOnce.Do(unlock) }
	defer release()
	if err := u.clearStale(); err != nil {
		return 0, err
	}
	if o.Mode == UserMode {
		if ins, err := (&Project{File: file}).Instances(u.store); err != nil {
			return 0, err
		} else if len(ins) > 0 {
			return 0, fmt.Errorf("project %s is up already (%d instances); ops compose down stops it", file.Name, len(ins))
		}
	}
	// The project's own network namespace, unless the guests are to reach
	// the host's loopback (nsnet.go).
	layout.Namespace = o.Mode == UserMode && !o.HostLoopback && qemu.PasstBinary() != ""
	if err := u.packages(ctx, order); err != nil {
		return 0, err
	}
	if err := u.volumes(order); err != nil {
		return 0, err
	}
	var svcs []*service
	i := 0
	for _, name := range order {
		for _, r := range file.replicasOf(name) {
			s, err := u.prepare(r, i)
			if err != nil {
				return 0, fmt.Errorf("service %s: %w", name, err)
			}
			if i == 0 && s.built.Note != "" {
				o.Say(s.built.Note)
			}
			svcs = append(svcs, s)
			i++
		}
	}
	// A user-mode up that fails from here on leaves no state and no
	// network holder. (A --bridged run's folder holds its own pid and log.)
	// One killed on the way leaves its mark, which the next up finds.
	started := false
	if o.Mode == UserMode {
		if err := u.mark(); err != nil {
			return 0, err
		}
	}
	defer func() {
		if !started && o.Mode == UserMode {
			stopNet(u.dir)
			fileutil.RemoveAll(u.dir)
		}
	}()
	if layout.Namespace {
		stopNet(u.dir)           // a holder left by an up that was killed
		err := u.startNet(false) // listens on every host port
		if errors.Is(err, ErrNoNamespace) {
			o.Say(fmt.Sprintf("compose %s: %v; the services reach each other through QEMU's guestfwd, whose QEMU may start processes", file.Name, err))
			layout.Namespace = false
			for _, s := range svcs {
				s.net = u.userNet(s.Replica)
			}
		} else if err != nil {
			return 0, err
		}
	}
	if !layout.Namespace {
		for _, s := range svcs {
			if err := qemu.CheckFree(s.net.Forwards); err != nil {
				return 0, fmt.Errorf("service %s: %w", s.Service, err)
			}
		}
		// The ports replicas share, without a namespace: a holder in the
		// host's network listens on them.
		if o.Mode == UserMode && len(layout.Shared) > 0 {
			stopNet(u.dir)
			if err := u.startNet(true); err != nil {
				return 0, err
			}
		}
	}
	if layout.Mode == Bridged {
		if o.Detach {
			return 0, errors.New("compose up -d runs services as instances with user-mode networking; --bridged runs in the foreground")
		}
		for _, name := range order {
			if file.Services[name].Health != nil || len(file.Services[name].DependsOn) > 0 {
				o.Say("compose --bridged: health checks are not probed and depends_on conditions are not waited on; every service starts at once")
				break
			}
		}
		remove, err := u.bridge(svcs)
		defer remove()
		if err != nil {
			return 0, err
		}
		return u.run(ctx, svcs)
	}
	if err := writeRoutes(u.dir, routesFor(u.store, layout)); err != nil {
		return 0, err
	}
	if err := u.start(ctx, svcs); err != nil {
		return 0, err
	}
	if err := os.Remove(u.startingFile()); err != nil {
		return 0, goerrors.Wrap(err, 0)
	}
	started = true
	release()
	if o.Detach {
		return 0, nil
	}
	return u.follow(ctx, svcs)
}

// startingFile is there while an up brings the project's services up:
// found by a later up, it says the one that wrote it was killed on the
// way.
func (u *up) startingFile() string { return filepath.Join(u.dir, "starting") }

// mark records that this up is bringing the services up.
func (u *up) mark() error {
	if err := os.MkdirAll(u.dir, 0o755); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := fileutil.WriteAtomic(u.startingFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// clearStale removes what a dead writer left in the compose folders, and
// the half-made project of an up killed while it brought the services up
// (its instances, the network holder, its state), saying so.
func (u *up) clearStale() error {
	for _, d := range []string{filepath.Dir(u.dir), u.dir} {
		if err := fileutil.ClearStale(d); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	if _, err := os.Stat(u.startingFile()); err != nil {
		return nil
	}
	ins, err := (&Project{File: u.file}).Instances(u.store)
	if err != nil {
		return err
	}
	if err := down(u.store, u.file, u.opts.Home, false); err != nil {
		return err
	}
	u.opts.Say(fmt.Sprintf("compose %s: removed what an up killed on the way left (%d instances)", u.file.Name, len(ins)))
	return nil
}

// volumes creates the named volumes that do not exist yet, each in the
// format of the guest of the service that mounts it.
func (u *up) volumes(order []string) error {
	size := u.opts.VolumeSize
	if size == 0 {
		size = 1 << 30
	}
	for _, name := range order {
		s := u.file.Services[name]
		for _, m := range s.Mounts {
			vn := u.file.volumeName(m.Volume)
			if _, err := u.opts.Home.Volumes().Get(vn); err == nil {
				continue
			}
			c, err := u.file.serviceConfig(u.file.replicasOf(name)[0], u.opts.Guest)
			if err != nil {
				return fmt.Errorf("service %s: %w", name, err)
			}
			g, _, err := lepton.ChooseGuest(u.opts.Home, c)
			if err != nil {
				return fmt.Errorf("service %s: %w", name, err)
			}
			if _, err := u.opts.Home.Volumes().Create(vn, size, "", g.VolumeFormat()); err != nil {
				return fmt.Errorf("service %s: volume %s: %w", name, m.Volume, err)
			}
			u.opts.Say(fmt.Sprintf("compose %s: created volume %s (%s)", u.file.Name, vn, g.Name()))
		}
	}
	return nil
}

// start creates an instance per replica and starts them in order, each
// service once the conditions of its depends_on hold; on a failure the
// instances already made are stopped and removed.
func (u *up) start(ctx context.Context, svcs []*service) (err error) {
	var made []string
	defer func() {
		if err != nil {
			for _, n := range made {
				u.store.Stop(n, 0)
				u.store.Delete(n)
			}
		}
	}()
	for _, s := range svcs {
		spec := instance.Spec{Name: s.Instance, Image: s.built.Path, Config: *s.config, Created: time.Now().UTC(),
			Net: &s.net, Project: u.file.Name, Service: s.Service}
		svc := u.file.Services[s.Service]
		if spec.Restart, err = instance.ParsePolicy(svc.Restart); err != nil {
			return fmt.Errorf("service %s: restart: %w", s.Service, err)
		}
		if h := svc.Health; h != nil {
			spec.Health = u.probe(s.Instance, h)
		}
		if err := u.store.Create(spec); err != nil {
			return fmt.Errorf("service %s: %w (is project %s up already?)", s.Service, err, u.file.Name)
		}
		made = append(made, s.Instance)
	}
	waited := map[string]bool{}
	for _, s := range svcs {
		if !waited[s.Service] {
			waited[s.Service] = true
			if err := u.waitDeps(ctx, s.Service); err != nil {
				return err
			}
		}
		if _, err := u.store.Start(u.opts.Self, s.Instance); err != nil {
			return fmt.Errorf("service %s: %w", s.Service, err)
		}
	}
	stops := "ops compose down stops them"
	if !u.opts.Detach {
		stops = "Ctrl-C stops them"
	}
	line := fmt.Sprintf("compose %s: %s up as %s (ops compose ps; %s)", u.file.Name, plural(len(u.file.Services), "service"), plural(len(svcs), "instance"), stops)
	for _, e := range u.layout.published() {
		name := e.Instance
		if name == "" {
			name = e.Service // its replicas share the port
		}
		line += fmt.Sprintf("; %s on %s", name, e.Addr())
	}
	u.opts.Say(line)
	return nil
}

// probe is a replica's health check on its own forwarded port.
func (u *up) probe(inst string, h *Health) *instance.Probe {
	p := &instance.Probe{Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
		Send: h.Send, Expect: h.Expect}
	for _, e := range u.layout.endpointsOf(inst) {
		if e.Port != h.Port {
			continue
		}
		host := e.HostIP
		if host == "0.0.0.0" {
			host = "127.0.0.1"
		}
		addr := net.JoinHostPort(host, strconv.Itoa(e.HostPort))
		if h.Path != "" {
			p.HTTP = "http://" + addr + h.Path
		} else {
			p.TCP = addr
		}
	}
	return p
}

// waitDeps waits until the services name depends on meet their
// conditions: started (done by then), healthy, or completed with exit
// code 0. A dependency that stops, turns unhealthy or fails is an error.
func (u *up) waitDeps(ctx context.Context, name string) error {
	s := u.file.Services[name]
	for _, dep := range slices.Sorted(maps.Keys(s.DependsOn)) {
		cond := s.DependsOn[dep]
		if cond == Started {
			continue
		}
		u.opts.Say(fmt.Sprintf("compose %s: %s waits for %s to be %s", u.file.Name, name, dep, strings.ReplaceAll(strings.TrimPrefix(cond, "service_"), "_", " ")))
		for _, r := range u.file.replicasOf(dep) {
			for {
				in, err := u.store.Get(r.Instance)
				if err != nil {
					return err
				}
				done, err := met(in, cond)
				if err != nil {
					return fmt.Errorf("service %s depends on %s: %w (ops compose logs %s)", name, dep, err, dep)
				}
				if done {
					break
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	}
	return nil
}

// met reports whether an instance meets a depends_on condition, and
// whether it never will.
func met(in *instance.Instance, cond string) (bool, error) {
	switch cond {
	case Healthy:
		switch {
		case in.Status == instance.Running && in.HealthStatus == instance.HealthHealthy:
			return true, nil
		case in.Status == instance.Running && in.HealthStatus == instance.HealthUnhealthy:
			return false, fmt.Errorf("%s is unhealthy", in.Name)
		}
	case Completed:
		if in.Status == instance.Exited && in.ExitCode != nil && *in.ExitCode == 0 {
			return true, nil
		}
		if in.Status == instance.Exited {
			code := "no exit code"
			if in.ExitCode != nil {
				code = "exit code " + strconv.Itoa(*in.ExitCode)
			}
			return false, fmt.Errorf("%s exited with %s", in.Name, code)
		}
	}
	switch in.Status {
	case instance.Failed, instance.Dead, instance.Stopped:
		return false, fmt.Errorf("%s is %s %s", in.Name, in.Status, in.Error)
	case instance.Exited:
		if cond == Healthy {
			return false, fmt.Errorf("%s exited", in.Name)
		}
	}
	return false, nil
}

// follow prints the replicas' logs until ctx ends or none runs any more,
// then stops and removes them.
func (u *up) follow(ctx context.Context, svcs []*service) (int, error) {
	var names []string
	for _, s := range svcs {
		names = append(names, s.Instance)
	}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); Logs(fctx, u.store, names, u.opts.Stdout, true) }()
	exit := 0
	for ctx.Err() == nil {
		active := false
		for _, n := range names {
			if in, err := u.store.Get(n); err == nil && in.Active() {
				active = true
			}
		}
		if !active {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	for _, n := range names {
		in, err := u.store.Get(n)
		if err != nil || ctx.Err() != nil {
			continue
		}
		switch {
		case in.ExitCode != nil:
			u.opts.Say(fmt.Sprintf("%s exited with %d", n, *in.ExitCode))
			if *in.ExitCode != 0 && exit == 0 {
				exit = *in.ExitCode
			}
		case in.Status == instance.Failed:
			u.opts.Say(fmt.Sprintf("%s failed: %s", n, in.Error))
			if exit == 0 {
				exit = 1
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // the last lines of the logs
	stop()
	<-done
	if err := Down(u.store, u.file, u.opts.Home, false); err != nil {
		return 0, err
	}
	return exit, nil
}

// run boots every service's machine and waits for them (--bridged).
func (u *up) run(ctx context.Context, svcs []*service) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// On an early return, the VMs already started stop before Up returns.
	defer func() { cancel(); wg.Wait() }()
	var mu sync.Mutex
	exit := 0
	for _, s := range svcs {
		// The machine's own lock on the volumes; its tap is the bridge's.
		s.machine.Stdout, s.machine.Stderr = prefixWriter(u.opts.Stdout, s.Instance), prefixWriter(u.opts.Stderr, s.Instance)
		release, err := s.machine.Prepare()
		if err != nil {
			return 0, fmt.Errorf("service %s: %w", s.Service, err)
		}
		wg.Add(1)
		go func(s *service) {
			defer wg.Done()
			defer release()
			out, err := s.machine.Boot(ctx)
			if out.Stopped && err == nil {
				return
			}
			if err == nil {
				err = out.NoCode
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				u.opts.Say(fmt.Sprintf("[%s] %v", s.Service, err))
				exit = 1
				return
			}
			u.opts.Say(fmt.Sprintf("[%s] exited with %d", s.Service, out.ExitCode))
			if out.ExitCode != 0 && exit == 0 {
				exit = out.ExitCode
			}
		}(s)
	}
	line := fmt.Sprintf("compose %s: %d services up", u.file.Name, len(svcs))
	for _, e := range u.layout.published() {
		line += fmt.Sprintf("; %s on %s", e.Service, e.Addr())
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
		ti, err := l.Tap(s.net.Tap)
		if err != nil {
			return remove, err
		}
		if err := l.Attach(ti, bi); err != nil {
			return remove, err
		}
		for _, e := range u.layout.endpointsOf(s.Instance) {
			if !e.Published {
				continue
			}
			stop, err := splice.Forward(e.Addr(), net.JoinHostPort(u.layout.ReplicaAddr[s.Instance], strconv.Itoa(e.Port)))
			if err != nil {
				return remove, fmt.Errorf("publishing %s: %w", e.Addr(), err)
			}
			stops = append(stops, stop)
		}
	}
	// A service with replicas: its address is the host's, on the bridge,
	// and ops hands each connection to its ports to the next replica.
	for _, name := range u.file.Names() {
		reps := u.file.replicasOf(name)
		if len(reps) < 2 {
			continue
		}
		addr, err := netip.ParseAddr(u.layout.Addr[name])
		if err != nil {
			return remove, err
		}
		if err := l.AddAddr(bi, netip.PrefixFrom(addr, ones)); err != nil {
			return remove, fmt.Errorf("address of %s on %s: %w", name, br, err)
		}
		for _, e := range u.layout.endpointsOf(reps[0].Instance) {
			listen := net.JoinHostPort(u.layout.Addr[name], strconv.Itoa(e.Port))
			stop, err := splice.ForwardTo(listen, u.bridgeRoute(name, e.Port))
			if err != nil {
				return remove, fmt.Errorf("service %s on %s: %w", name, listen, err)
			}
			stops = append(stops, stop)
		}
	}
	// The ports its replicas share: on the host, the same way.
	for _, e := range u.layout.Shared {
		stop, err := splice.ForwardTo(e.Addr(), u.bridgeRoute(e.Service, e.Port))
		if err != nil {
			return remove, fmt.Errorf("publishing %s: %w", e.Addr(), err)
		}
		stops = append(stops, stop)
	}
	return remove, nil
}

// bridgeRoute is the route of each connection to a service's guest port
// on the bridge: its replicas round-robin, each after the one before in
// case it does not answer (no health on a bridge: all alike).
func (u *up) bridgeRoute(name string, port int) func() splice.Route {
	var backends []Backend
	for _, r := range u.file.replicasOf(name) {
		backends = append(backends, Backend{Instance: r.Instance, Addr: net.JoinHostPort(u.layout.ReplicaAddr[r.Instance], strconv.Itoa(port))})
	}
	ranks := make([]int, len(backends))
	var n atomic.Uint64
	return func() splice.Route {
		var r splice.Route
		for _, be := range order(backends, ranks, n.Add(1)-1) {
			r.Addrs = append(r.Addrs, be.Addr)
		}
		return r
	}
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

// plural is n and the noun, with an s when n is not 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
