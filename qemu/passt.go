package qemu

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/netns"
	"golang.org/x/sys/unix"
)

// User-mode networking through passt. QEMU's own user-mode network (slirp)
// sends whatever the guest addresses to its gateway, 10.0.2.2, to the
// host's loopback: every service bound to the host's 127.0.0.1 is open to
// every guest. passt (https://passt.top, Debian package passt) is a
// user-mode network in its own sandboxed process that can be told not to
// do that (--no-map-gw): the guest's connections go out as the host's own
// connections to the addresses the guest named, and 127.0.0.1 in the guest
// is the guest's. QEMU 7.2 reaches it through -netdev stream on one end
// of a socket pair; passt holds the other (-F) and quits with QEMU (-1).

// The guest's view of the network, the same as under QEMU's slirp, so a
// guest configured for one works with the other.
const (
	userGuest   = "10.0.2.15"
	userGateway = "10.0.2.2"
	userDNS     = "10.0.2.3"
)

// passtFD is the descriptor number of QEMU's end of the socket pair: its
// first extra file.
const passtFD = 3

// PasstBinary is the passt executable on PATH, or "" when it is not
// installed.
func PasstBinary() string {
	p, err := exec.LookPath("passt")
	if err != nil {
		return ""
	}
	return p
}

// passtArgs is passt's command line for a VM's network: the guest's
// address, gateway and DNS as slirp gives them, no gateway mapping to the
// host, DNS queries to 10.0.2.3 forwarded to the host's resolver, and the
// port forwards; fd is passt's end of the socket pair.
func passtArgs(n Net, fd int) []string {
	a := []string{"--foreground", "--quiet", "--one-off", "--fd", strconv.Itoa(fd),
		"--address", userGuest, "--netmask", "24", "--gateway", userGateway,
		"--no-map-gw", "--dns-forward", userDNS, "--dns", userDNS}
	v6 := false
	var tcp, udp []string
	for _, f := range n.Forwards {
		ip := net.ParseIP(f.HostIP)
		if ip != nil && ip.To4() == nil {
			v6 = true
		}
		spec := fmt.Sprintf("%d:%d", f.HostPort, f.GuestPort)
		if f.HostIP != "" && !(ip != nil && ip.IsUnspecified()) {
			spec = f.HostIP + "/" + spec
		}
		if f.Proto == "udp" {
			udp = append(udp, spec)
		} else {
			tcp = append(tcp, spec)
		}
	}
	if !v6 {
		a = append(a, "--ipv4-only")
	}
	for _, s := range tcp {
		a = append(a, "--tcp-ports", s)
	}
	for _, s := range udp {
		a = append(a, "--udp-ports", s)
	}
	return a
}

// PasstLine is the passt command ops starts beside QEMU for n, as a
// shell line, for -v (its descriptor 3 is the socket pair's other end).
func PasstLine(n Net) string {
	return ShellLine(append([]string{n.Passt}, passtArgs(n, passtFD)...))
}

// passtProc is the passt serving a VM's network: ops's own child, or
// one that a project's network namespace started for it (netns).
type passtProc interface {
	// wait returns once passt has exited.
	wait() error
	kill()
}

// startPasst starts passt for n, in n.Namespace's network when it names
// one, and returns it with QEMU's end of their socket pair, which the
// caller hands to QEMU as its first extra file and then closes. passt
// dies with ops, like QEMU (or, in a namespace, with its holder).
func startPasst(n Net, stderr *tail) (passtProc, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, goerrors.Errorf("socket pair for passt: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "qemu-net"), os.NewFile(uintptr(fds[1]), "passt-net")
	defer theirs.Close()
	var p passtProc
	if n.Namespace != "" {
		p, err = spawnPasst(n, theirs, stderr)
	} else {
		p, err = execPasst(n, theirs, stderr)
	}
	if err != nil {
		ours.Close()
		return nil, nil, err
	}
	return p, ours, nil
}

// localPasst is passt as ops's child.
type localPasst struct{ cmd *exec.Cmd }

func (p localPasst) wait() error { return p.cmd.Wait() }
func (p localPasst) kill()       { _ = p.cmd.Process.Kill() }

func execPasst(n Net, end *os.File, stderr *tail) (passtProc, error) {
	cmd := exec.Command(n.Passt, passtArgs(n, passtFD)...)
	cmd.ExtraFiles = []*os.File{end}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, goerrors.Errorf("starting passt: %w", err)
	}
	return localPasst{cmd}, nil
}

// nsPasst is passt started by a network namespace's holder: ops holds a
// pidfd to stop it, the read end of its standard error, and the holder's
// word on its exit status.
type nsPasst struct {
	child  *netns.Child
	stderr chan struct{} // closed when passt's standard error has ended
	mu     sync.Mutex
	// pidfd is closed (-1) once passt has exited, so a kill after that
	// cannot reach a process the descriptor number came to stand for.
	pidfd int
}

// wait is nil when passt exited by itself with status 0: QEMU closed its
// end (--one-off).
func (p *nsPasst) wait() error {
	<-p.stderr
	code, err := p.child.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
	if err == nil && code != 0 {
		err = fmt.Errorf("passt exited with status %d", code)
	}
	return err
}

func (p *nsPasst) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd >= 0 {
		_ = unix.PidfdSendSignal(p.pidfd, unix.SIGKILL, nil, 0)
	}
}

func spawnPasst(n Net, end *os.File, stderr *tail) (passtProc, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	child, err := netns.Spawn(n.Namespace, passtArgs(n, netns.PasstFD), end, w)
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	pidfd, err := unix.PidfdOpen(child.Pid, 0)
	if err != nil {
		go child.Wait() // and closes the connection to the holder
		r.Close()
		return nil, goerrors.Errorf("passt (pid %d): %w", child.Pid, err)
	}
	p := &nsPasst{child: child, pidfd: pidfd, stderr: make(chan struct{})}
	go func() {
		io.Copy(stderr, r)
		r.Close()
		close(p.stderr)
	}()
	return p, nil
}

// passtFailed is what went wrong when passt quit before QEMU: its last
// lines, without the noise of a missing system logger.
func passtFailed(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Failed to send") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 3 {
		keep = keep[len(keep)-3:]
	}
	return strings.Join(keep, "; ")
}
