package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opsdev/ops/compose"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/netlink"
	"github.com/opsdev/ops/qemu"
	"github.com/spf13/cobra"
)

type composeFlags struct {
	file     string
	detach   bool
	bridged  bool
	subnet   string
	accel    bool
	verbose  bool
	guest    string
	stopWait time.Duration
}

func newComposeCmd(app *App) *cobra.Command {
	f := &composeFlags{}
	c := &cobra.Command{
		Use:   "compose",
		Short: "Run several unikernels that reach each other by name",
		Long: `Run the services of a compose file, each its own unikernel, each reachable
from the others by its service name.

  ops compose up -f compose.yaml        foreground; Ctrl-C stops everything
  ops compose up -f compose.yaml -d     in the background; logs in the ops home
  ops compose down -f compose.yaml

Without root (the default), every guest uses QEMU's user-mode networking; the
other services are reached at stable addresses (10.0.2.100, .101, ... by service
name, written into each image's /etc/hosts) through forwards to their ports on
the host's 127.0.0.1. With --bridged (root), the project gets a private bridge
and every service a tap device and an address on it.

compose.yaml:
  name: taxi
  services:
    passenger:
      program: ./bin/passenger     # an ELF (or package: eyberg/node:20, local: true)
      args: ["--port", "8080"]
      env: {MODE: prod}
      expose: [8080]               # ports the other services use
    trip:
      program: ./bin/trip
      expose: [8080]
      ports: ["18080:8080"]        # published on the host's 127.0.0.1`,
	}
	c.PersistentFlags().StringVarP(&f.file, "file", "f", "compose.yaml", "compose file")
	up := &cobra.Command{
		Use:   "up",
		Short: "Build and start every service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.detach {
				return composeDetach(app, f)
			}
			return composeUp(app, f)
		},
	}
	up.Flags().BoolVarP(&f.detach, "detach", "d", false, "run in the background")
	up.Flags().BoolVar(&f.bridged, "bridged", false, "a private bridge with one address per service (needs root)")
	up.Flags().StringVar(&f.subnet, "subnet", "10.3.0.0/24", "the bridge's subnet with --bridged")
	up.Flags().BoolVar(&f.accel, "accel", true, "use KVM where it really works")
	up.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "print QEMU command lines")
	up.Flags().StringVar(&f.guest, "guest", "", "guest for every service without its own: nanos or linux")
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop a project started with up -d, removing everything it made",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return composeDown(app, f)
		},
	}
	c.AddCommand(up, down)
	return c
}

// projectState loads the compose file and finds the project's state
// folder (<ops home>/compose/<name>) and the PID of its background
// supervisor (0 when there is none).
func projectState(f *composeFlags) (*compose.File, string, int, error) {
	file, err := compose.Load(f.file)
	if err != nil {
		return nil, "", 0, err
	}
	home, err := lepton.DefaultHome()
	if err != nil {
		return nil, "", 0, err
	}
	dir := filepath.Join(home.Dir, "compose", file.Name)
	pid := 0
	if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	return file, dir, pid, nil
}

// service is one running service.
type service struct {
	name string
	b    *built
	vm   qemu.VM
	c    *lepton.Config
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func composeUp(app *App, f *composeFlags) error {
	file, err := compose.Load(f.file)
	if err != nil {
		return err
	}
	mode := compose.UserMode
	if f.bridged {
		mode = compose.Bridged
	}
	layout, err := file.Layout(mode, f.subnet, freePort)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, cancel, _ := stopOnSignal()
	defer cancel()

	accel, _ := qemu.DecideAccel(qemu.HostProbe(f.accel))
	var svcs []*service
	for i, name := range file.Names() {
		s, err := prepareService(app, file, layout, name, i, f, accel, self)
		if err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
		svcs = append(svcs, s)
		if s.b.note != "" && i == 0 {
			fmt.Fprintln(app.Stderr, s.b.note)
		}
	}
	if mode == compose.Bridged {
		cleanup, err := setupBridge(file, layout, svcs)
		defer cleanup()
		if err != nil {
			return err
		}
		for _, s := range svcs {
			for _, e := range file.Published(layout, s.name) {
				stop, err := tcpForward(ctx, fmt.Sprintf("127.0.0.1:%d", e.HostPort), net.JoinHostPort(layout.Addr[s.name], strconv.Itoa(e.Port)))
				if err != nil {
					return err
				}
				defer stop()
			}
		}
	}
	for _, s := range svcs {
		if err := qemu.CheckFree(s.vm.Net.Forwards); err != nil {
			return fmt.Errorf("service %s: %w", s.name, err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	exit := 0
	for _, s := range svcs {
		argv, err := s.vm.Args()
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("service %s: %w", s.name, err)
		}
		if f.verbose {
			fmt.Fprintf(app.Stderr, "[%s] %s\n", s.name, qemu.ShellLine(argv))
		}
		out := prefixWriter(app.Stdout, s.name)
		p, err := qemu.Start(argv, s.vm.Pages, out, prefixWriter(app.Stderr, s.name))
		if err != nil {
			cancel()
			wg.Wait()
			return err
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
				fmt.Fprintf(app.Stderr, "[%s] %v\n", s.name, err)
				exit = 1
			} else {
				fmt.Fprintf(app.Stderr, "[%s] exited with %d\n", s.name, code)
				if code != 0 && exit == 0 {
					exit = code
				}
			}
		}(s)
	}
	fmt.Fprintf(app.Stderr, "compose %s: %d services up", file.Name, len(svcs))
	for _, s := range svcs {
		for _, e := range file.Published(layout, s.name) {
			fmt.Fprintf(app.Stderr, "; %s on 127.0.0.1:%d", s.name, e.HostPort)
		}
	}
	fmt.Fprintln(app.Stderr)
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return exitWith(exit)
}

// prepareService builds one service's image and describes its VM.
func prepareService(app *App, file *compose.File, layout *compose.Net, name string, index int, f *composeFlags, accel qemu.Accel, self string) (*service, error) {
	s := file.Services[name]
	cfgPath := s.Config
	if cfgPath != "" && !filepath.IsAbs(cfgPath) {
		cfgPath = filepath.Join(file.Dir, cfgPath)
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
	case f.guest != "":
		c.Guest = f.guest
	}
	selfAddr := "10.0.2.15"
	if layout.Mode == compose.Bridged {
		selfAddr = layout.Addr[name]
		ones, _ := layout.Subnet.Mask.Size()
		c.RunConfig.IPAddress = selfAddr
		c.RunConfig.NetMask = net.IP(net.CIDRMask(ones, 32)).String()
		c.RunConfig.Gateway = layout.Gateway
		c.RunConfig.TapName = tapName(file.Name, index)
	}
	extra := []opsfs.Entry{
		{Path: "/etc/hosts", Kind: opsfs.KindFile, Data: layout.Hosts(name, selfAddr)},
		{Path: "/etc/nsswitch.conf", Kind: opsfs.KindFile, Data: []byte("hosts: files dns\n")},
	}
	var in lepton.PlanInput
	if s.Package != "" {
		e, err := newPkgEnv(c)
		if err != nil {
			return nil, err
		}
		dir, _, err := e.resolve(app, s.Package, s.Local)
		if err != nil {
			return nil, err
		}
		if in, err = lepton.PackagePlan(dir, c, file.Dir); err != nil {
			return nil, err
		}
	} else {
		prog := s.Program
		if !filepath.IsAbs(prog) {
			prog = filepath.Join(file.Dir, prog)
		}
		in = lepton.PlanInput{Config: c, Program: prog, Dir: file.Dir, Argv: []string{s.Program}}
	}
	in.Extra = extra
	b, err := buildImage(&buildFlags{}, c, in, file.Name+"-"+name)
	if err != nil {
		return nil, err
	}
	vm, err := vmFor(b, c, accel, true)
	if err != nil {
		return nil, err
	}
	if layout.Mode == compose.UserMode {
		vm.Net = qemu.Net{Mode: "user"}
		for _, e := range layout.Endpoints {
			if e.Service == name {
				vm.Net.Forwards = append(vm.Net.Forwards, qemu.Forward{Proto: "tcp", HostIP: "127.0.0.1", HostPort: e.HostPort, GuestPort: e.Port})
				continue
			}
			vm.Net.GuestFwd = append(vm.Net.GuestFwd, qemu.GuestFwd{IP: layout.Addr[e.Service], Port: e.Port,
				Cmd: fmt.Sprintf("%s proxy 127.0.0.1:%d", self, e.HostPort)})
		}
	} else {
		vm.Net.MAC = fmt.Sprintf("52:54:00:4f:50:%02x", index+16)
	}
	return &service{name: name, b: b, vm: vm, c: c}, nil
}

func tapName(project string, i int) string {
	n := fmt.Sprintf("ops%d-%s", i, project)
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

func bridgeName(project string) string {
	n := "opsbr-" + project
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

// links creates taps and bridges and remembers what it made, so cleanup
// removes exactly that (on any exit, Ctrl-C included).
type links struct {
	nl   *netlink.Conn
	made []string
}

func openLinks() (*links, error) {
	nl, err := netlink.Dial()
	if err != nil {
		return nil, err
	}
	return &links{nl: nl}, nil
}

func (l *links) cleanup() {
	for i := len(l.made) - 1; i >= 0; i-- {
		if idx, err := ifIndexNet(l.made[i]); err == nil {
			l.nl.DeleteLink(idx)
		}
	}
	l.nl.Close()
}

// tap returns the index of a tap device, creating it when missing.
func (l *links) tap(name string) (int, error) {
	if i, err := ifIndexNet(name); err == nil {
		return i, nil
	}
	if err := netlink.AddTap(name); err != nil {
		return 0, privilegeHint(err)
	}
	l.made = append(l.made, name)
	return ifIndexNet(name)
}

// bridge returns the index of a bridge, creating it when missing, up.
func (l *links) bridge(name string) (int, error) {
	if _, err := ifIndexNet(name); err != nil {
		if err := l.nl.AddBridge(name); err != nil {
			return 0, privilegeHint(fmt.Errorf("creating bridge %s: %w", name, err))
		}
		l.made = append(l.made, name)
	}
	i, err := ifIndexNet(name)
	if err != nil {
		return 0, err
	}
	return i, l.nl.LinkUp(i)
}

// attach puts a tap on a bridge and sets it up.
func (l *links) attach(tap, bridge int) error {
	if err := l.nl.SetMaster(tap, bridge); err != nil {
		return privilegeHint(fmt.Errorf("adding a tap to its bridge: %w", err))
	}
	return l.nl.LinkUp(tap)
}

// setupBridge makes the project's bridge (with the gateway address) and
// a tap per service; cleanup removes them all.
func setupBridge(file *compose.File, layout *compose.Net, svcs []*service) (cleanup func(), err error) {
	l, err := openLinks()
	if err != nil {
		return func() {}, err
	}
	br := bridgeName(file.Name)
	if _, err := ifIndexNet(br); err == nil {
		return l.cleanup, fmt.Errorf("bridge %s already exists: is project %s up already?", br, file.Name)
	}
	bi, err := l.bridge(br)
	if err != nil {
		return l.cleanup, err
	}
	ones, _ := layout.Subnet.Mask.Size()
	if err := l.nl.AddAddr(bi, [4]byte(net.ParseIP(layout.Gateway).To4()), ones); err != nil {
		return l.cleanup, fmt.Errorf("address on %s: %w", br, err)
	}
	for _, s := range svcs {
		ti, err := l.tap(s.vm.Net.Tap)
		if err != nil {
			return l.cleanup, err
		}
		if err := l.attach(ti, bi); err != nil {
			return l.cleanup, err
		}
	}
	return l.cleanup, nil
}

// setupTap makes the tap device (and the bridge, when named) unless they
// exist; cleanup removes only what it created.
func setupTap(tap, bridge string) (func(), error) {
	l, err := openLinks()
	if err != nil {
		return func() {}, err
	}
	ti, err := l.tap(tap)
	if err != nil {
		return l.cleanup, err
	}
	if bridge == "" {
		return l.cleanup, privilegeHint(l.nl.LinkUp(ti))
	}
	bi, err := l.bridge(bridge)
	if err != nil {
		return l.cleanup, err
	}
	return l.cleanup, l.attach(ti, bi)
}

func ifIndexNet(name string) (int, error) {
	i, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return i.Index, nil
}

func privilegeHint(err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w: bridged networking needs root (or CAP_NET_ADMIN); without it, leave out --bridged", err)
	}
	return err
}

// tcpForward accepts on listen and joins each connection to target.
func tcpForward(ctx context.Context, listen, target string) (func(), error) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("publishing %s: %w", listen, err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				t, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer t.Close()
				go io.Copy(t, c)
				io.Copy(c, t)
			}()
		}
	}()
	return func() { l.Close() }, nil
}

// prefixWriter prefixes every line with [name].
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

// composeDetach starts `compose up` in the background in its own session,
// its output in the project's log, and records its PID.
func composeDetach(app *App, f *composeFlags) error {
	file, dir, pid, err := projectState(f)
	if err != nil {
		return err
	}
	if qemu.Alive(pid) {
		return fmt.Errorf("project %s is already up (pid %d); stop it with 'ops compose down'", file.Name, pid)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"compose", "up", "-f", f.file, "--subnet", f.subnet, "--accel=" + strconv.FormatBool(f.accel)}
	if f.bridged {
		args = append(args, "--bridged")
	}
	if f.guest != "" {
		args = append(args, "--guest", f.guest)
	}
	c := exec.Command(self, args...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(filepath.Join(dir, "pid"), []byte(strconv.Itoa(c.Process.Pid)+"\n"), 0o644); err != nil {
		c.Process.Kill()
		return err
	}
	fmt.Fprintf(app.Stdout, "compose %s: started in the background (pid %d); logs in %s; stop with 'ops compose down -f %s'\n", file.Name, c.Process.Pid, logPath, f.file)
	c.Process.Release()
	return nil
}

func composeDown(app *App, f *composeFlags) error {
	file, dir, pid, err := projectState(f)
	if err != nil {
		return err
	}
	if pid <= 1 {
		return fmt.Errorf("project %s is not up (no pid in %s)", file.Name, dir)
	}
	if qemu.Alive(pid) {
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100 && qemu.Alive(pid); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if qemu.Alive(pid) {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	os.Remove(filepath.Join(dir, "pid"))
	fmt.Fprintf(app.Stdout, "compose %s: down\n", file.Name)
	return nil
}
