package compose

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/internal/splice"
	"github.com/opsdev/ops/netns"
	"github.com/opsdev/ops/qemu"
)

// A project's user-mode network, in a network namespace of its own
// (package netns). A holder process, `ops compose net DIR`, makes the
// namespace and keeps it:
//   - every service's address (and each replica's, for a service with
//     several) is a local address inside it; each replica's passt runs in
//     it, started by the holder, and listens at its replica's address on
//     the service's ports. A guest connecting to another service by name
//     reaches that service's passt: no process per connection, nothing
//     but the project's services reachable (no host loopback, no way out);
//   - for a service with replicas, the holder listens at the service's
//     address and hands each connection to the replica the project's
//     Balancer picks;
//   - the host ports (published, and the others ops picks for health
//     probes) are listeners up made on the host and passed to the holder,
//     which joins each connection to its replica's address inside; a port
//     a service with replicas publishes is one listener, and the Balancer
//     picks the replica of each connection.
// QEMU stays in the host's namespace, unprivileged and fully sandboxed.
// A project without a namespace whose replicated services publish ports
// gets a holder too, in the host's network, serving those ports alone
// (HostOnly): each replica's own ports are its QEMU's forwards.

// NetSpec is what the project's network holder serves; up writes it into
// the project's state folder.
type NetSpec struct {
	// HostOnly: no namespace; the holder serves the host listeners only.
	HostOnly bool     `json:"host_only,omitempty"`
	Addrs    []string `json:"addrs"` // the services' and replicas' addresses
	// Host is the host's listeners, the holder's descriptors 3, 4, ... in
	// this order.
	Host    []HostPort `json:"host"`
	Balance []Balanced `json:"balance"`
}

// HostPort is a host listener and where its connections go: to one
// replica, or (Instance empty: a port shared by the service's replicas)
// to the one the Balancer picks.
type HostPort struct {
	Service  string `json:"service"`
	Instance string `json:"instance,omitempty"`
	Listen   string `json:"listen"`           // on the host
	Port     int    `json:"port"`             // in the guest
	Target   string `json:"target,omitempty"` // the replica's address and port in the namespace
}

// Balanced is a service with replicas: a listener at its address, in the
// namespace, for one of its ports.
type Balanced struct {
	Service string `json:"service"`
	Port    int    `json:"port"`
	Listen  string `json:"listen"`
}

func netSpecFile(dir string) string { return filepath.Join(dir, "net.json") }

// readNetSpec reads the network spec up wrote into the project's state
// folder dir.
func readNetSpec(dir string) (NetSpec, error) {
	var spec NetSpec
	b, err := os.ReadFile(netSpecFile(dir))
	if err != nil {
		return spec, goerrors.Wrap(err, 0)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return spec, fmt.Errorf("%s: %w", netSpecFile(dir), err)
	}
	return spec, nil
}
func netSocket(dir string) string  { return filepath.Join(dir, "net.sock") }
func netPIDFile(dir string) string { return filepath.Join(dir, "net.pid") }
func netLog(dir string) string     { return filepath.Join(dir, "net.log") }

// netSpec is the layout's namespace: its addresses, a host listener per
// endpoint and per shared port, and a balancer per port of each service
// with replicas. hostOnly (no namespace): the shared ports alone.
func (f *File) netSpec(n *Net, hostOnly bool) NetSpec {
	s := NetSpec{HostOnly: hostOnly}
	for _, e := range n.Shared {
		s.Host = append(s.Host, HostPort{Service: e.Service, Listen: e.Addr(), Port: e.Port})
	}
	if hostOnly {
		return s
	}
	seen := map[string]bool{}
	for _, name := range f.Names() {
		reps := f.replicasOf(name)
		for _, a := range append([]string{n.Addr[name]}, replicaAddrs(n, reps)...) {
			if !seen[a] {
				seen[a] = true
				s.Addrs = append(s.Addrs, a)
			}
		}
		if len(reps) < 2 {
			continue
		}
		for _, e := range n.endpointsOf(reps[0].Instance) {
			s.Balance = append(s.Balance, Balanced{Service: name, Port: e.Port, Listen: net.JoinHostPort(n.Addr[name], strconv.Itoa(e.Port))})
		}
	}
	for _, e := range n.Endpoints {
		s.Host = append(s.Host, HostPort{Service: e.Service, Instance: e.Instance, Listen: e.Addr(), Port: e.Port,
			Target: net.JoinHostPort(n.ReplicaAddr[e.Instance], strconv.Itoa(e.Port))})
	}
	return s
}

func replicaAddrs(n *Net, reps []Replica) []string {
	var out []string
	for _, r := range reps {
		out = append(out, n.ReplicaAddr[r.Instance])
	}
	return out
}

// nsNet is a replica's network in the project's namespace: passt, started
// there by the holder, listening at the replica's address on each of its
// ports.
func (u *up) nsNet(r Replica) qemu.Net {
	n := qemu.Net{Mode: "user", Passt: qemu.PasstBinary(), Namespace: netSocket(u.dir)}
	seen := map[int]bool{}
	for _, e := range u.layout.endpointsOf(r.Instance) {
		if !seen[e.Port] {
			seen[e.Port] = true
			n.Forwards = append(n.Forwards, qemu.Forward{Proto: "tcp", HostIP: u.layout.ReplicaAddr[r.Instance], HostPort: e.Port, GuestPort: e.Port})
		}
	}
	return n
}

// ErrNoNamespace is a holder that could not make its namespace: the
// kernel allows no user namespaces to ops's user, for instance.
var ErrNoNamespace = errors.New("no network namespace for the project")

// startNet makes the host listeners (a port in use fails here), writes
// the spec and starts the holder, in a namespace of its own unless
// hostOnly, and returns once it serves.
func (u *up) startNet(hostOnly bool) error {
	spec := u.file.netSpec(u.layout, hostOnly)
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close() // the holder has its own
		}
	}()
	for _, h := range spec.Host {
		l, err := net.Listen("tcp", h.Listen)
		if err != nil {
			return fmt.Errorf("service %s: port %s: %w", h.Service, h.Listen, errors.Unwrap(err))
		}
		f, err := l.(*net.TCPListener).File()
		l.Close()
		if err != nil {
			return goerrors.Wrap(err, 0)
		}
		files = append(files, f)
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(u.dir, 0o755); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := fileutil.WriteAtomic(netSpecFile(u.dir), append(b, '\n'), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(netLog(u.dir))
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	defer logf.Close()
	cmd := exec.Command(u.opts.Self, "compose", "net", u.dir)
	if !hostOnly {
		cmd.SysProcAttr = netns.Isolate()
	}
	cmd.ExtraFiles = files
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("%w: %v", ErrNoNamespace, err)
		}
		return goerrors.Errorf("starting the project's network: %w", err)
	}
	if err := writePID(netPIDFile(u.dir), cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		if l == "ready" {
			return cmd.Process.Release()
		}
	case <-time.After(10 * time.Second):
	}
	cmd.Process.Kill()
	cmd.Wait()
	log, _ := os.ReadFile(netLog(u.dir))
	return fmt.Errorf("the project's network did not start: %s", strings.TrimSpace(string(log)))
}

// NetworkDown reports whether the project has a network namespace whose
// holder is no longer running.
func (p *Project) NetworkDown() bool {
	pid := readPID(netPIDFile(p.Dir))
	return pid != 0 && !qemu.Alive(pid)
}

// NetLog is the project network holder's log file.
func (p *Project) NetLog() string { return netLog(p.Dir) }

// stopNet stops the project's network holder, if any (which stops the
// passt of every replica still running).
func stopNet(dir string) {
	pid := readPID(netPIDFile(dir))
	if pid <= 1 {
		return
	}
	// Only the holder of this project: the pid may have been reused.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.Contains(string(cmdline), "\x00net\x00"+dir) {
		return
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100 && qemu.Alive(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	os.Remove(netPIDFile(dir))
}

// ServeNet is the holder, in the namespace it was started in: it sets the
// namespace up from the spec in dir, serves the host listeners (its
// descriptors from 3 on) and the balancers, writes "ready" to ready, then
// starts passt (passt names the binary) for each replica that asks, until
// it is killed. A HostOnly spec's holder serves its host listeners alone.
func ServeNet(dir, passt string, ready io.Writer) error {
	spec, err := readNetSpec(dir)
	if err != nil {
		return err
	}
	if !spec.HostOnly {
		if passt == "" {
			return errors.New("passt is not installed")
		}
		var addrs []netip.Addr
		for _, a := range spec.Addrs {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return fmt.Errorf("%s: address %q: %w", netSpecFile(dir), a, err)
			}
			addrs = append(addrs, ip)
		}
		if err := netns.Setup(addrs); err != nil {
			return err
		}
	}
	// One balancer for every listener: a replica one connection found
	// gone is left out of the next, whichever port it comes to.
	bal := Balancer{Dir: dir, Unreachable: &Unreachable{}}
	served := make(chan error, len(spec.Host)+len(spec.Balance))
	serve := func(l net.Listener, route func() (splice.Route, error)) {
		go func() { served <- splice.Serve(l, route) }()
	}
	for i, h := range spec.Host {
		l, err := net.FileListener(os.NewFile(uintptr(3+i), "listener"))
		if err != nil {
			return fmt.Errorf("host port %s: %w", h.Listen, err)
		}
		if h.Instance == "" {
			serve(l, func() (splice.Route, error) { return bal.Route(h.Service, h.Port) })
			continue
		}
		route := splice.Route{Addrs: []string{h.Target}}
		serve(l, func() (splice.Route, error) { return route, nil })
	}
	for _, s := range spec.Balance {
		l, err := net.Listen("tcp", s.Listen)
		if err != nil {
			return fmt.Errorf("service %s: %w", s.Service, err)
		}
		serve(l, func() (splice.Route, error) { return bal.Route(s.Service, s.Port) })
	}
	var passts *net.UnixListener
	if !spec.HostOnly {
		sock := netSocket(dir)
		os.Remove(sock)
		if passts, err = net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"}); err != nil {
			return goerrors.Wrap(err, 0)
		}
		if err := os.Chmod(sock, 0o600); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	if _, err := io.WriteString(ready, "ready\n"); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if spec.HostOnly {
		return <-served
	}
	return netns.Server{Passt: passt}.Serve(passts)
}
