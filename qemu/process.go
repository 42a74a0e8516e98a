package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goerrors "github.com/go-errors/errors"
	"golang.org/x/sys/unix"
)

// Result is how a QEMU process ended.
type Result struct {
	Status  int    // exit status; -1 when killed by a signal
	Stopped bool   // ops stopped it (context cancelled)
	Stderr  string // the tail of what QEMU printed on stderr
	Pid     int
	// NetFailed is what passt said when it quit before QEMU, which ops
	// then stopped: the guest had lost its network.
	NetFailed string
	// ShareFailed is the host folder whose virtiofsd quit before QEMU,
	// which ops then stopped: the guest had lost the folder.
	ShareFailed string
	// Reported is the exit code the guest reported another way than
	// through QEMU's status (on a machine without an exit device), if it
	// did: it stands when QEMU then exited normally.
	Reported *int
}

// tail keeps the last bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// dropLines passes a process's stderr through line by line, except the
// lines drop picks. The unfiltered stderr may still be kept (QEMU's goes
// to Result.Stderr).
type dropLines struct {
	w    io.Writer
	drop func(line []byte) bool
	line []byte
}

// stopNotice is the "terminating on signal" notice QEMU prints when a
// signal stops it: ops sends that signal on Ctrl-C and reports the stop
// itself.
func stopNotice(l []byte) bool {
	return bytes.HasPrefix(l, []byte("qemu-system-")) && bytes.Contains(l, []byte(": terminating on signal "))
}

func (d *dropLines) Write(p []byte) (int, error) {
	d.line = append(d.line, p...)
	for {
		i := bytes.IndexByte(d.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		l := d.line[:i+1]
		if !d.drop(l) {
			if _, err := d.w.Write(l); err != nil {
				return len(p), err
			}
		}
		d.line = d.line[i+1:]
	}
}

// flush writes what is left of an unfinished last line.
func (d *dropLines) flush() {
	if len(d.line) > 0 {
		_, _ = d.w.Write(d.line)
		d.line = nil
	}
}

// StopGrace is how long QEMU gets to exit after SIGTERM before SIGKILL.
const StopGrace = 500 * time.Millisecond

// Process is a running QEMU, with the passt serving its network if any.
type Process struct {
	cmd    *exec.Cmd
	errBuf *tail
	done   chan struct{}
	err    error

	channel *os.File // ops's end of the VM's Channel

	fs          []virtiofsd  // stopped once QEMU has exited
	shareFailed atomic.Value // string: the folder whose virtiofsd quit while QEMU ran

	passt       passtProc
	passtErr    *tail
	passtDone   chan struct{}
	netFailed   atomic.Bool // passt failed while QEMU ran
	passtKilled atomic.Bool // ops stopped passt, QEMU having exited
}

// StartVM starts vm: QEMU with argv from vm.Args, and first, when the
// network is passt's, passt with its end of their socket pair. Should
// passt quit while QEMU runs, StartVM's process stops QEMU and its Result
// says why (Result.NetFailed). With vm.FS, a virtiofsd for each share
// (virtiofs.go), its lines on stderr. With vm.RunAs, QEMU runs as that
// user with descriptors for what it could not open (unpriv.go).
func StartVM(vm VM, stdout, stderr io.Writer) (*Process, error) {
	var extra []*os.File
	var pc passtProc
	var fs []virtiofsd
	ptail := &tail{max: 4096}
	stopPasst := func() {
		if pc != nil {
			pc.kill()
			_ = pc.wait()
		}
	}
	var channel *os.File
	defer func() {
		for _, f := range extra {
			f.Close() // QEMU has its own copies
		}
	}()
	fail := func(err error) (*Process, error) {
		stopPasst()
		stopFS(fs, nil, true)
		if channel != nil {
			channel.Close()
		}
		return nil, err
	}
	if vm.usesPasst() {
		var qemuEnd *os.File
		var err error
		if pc, qemuEnd, err = startPasst(vm.Net, ptail); err != nil {
			return nil, err
		}
		extra = []*os.File{qemuEnd}
	}
	if vm.Channel != "" {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fail(goerrors.Errorf("socket pair for the guest's channel: %w", err))
		}
		channel = os.NewFile(uintptr(fds[0]), "channel")
		extra = append(extra, os.NewFile(uintptr(fds[1]), "channel-qemu"))
	}
	if vm.Incoming != "" {
		f, err := os.Open(vm.Incoming)
		if err != nil {
			return fail(goerrors.Errorf("opening the saved state %s: %w", vm.Incoming, err))
		}
		extra = append(extra, f)
	}
	if len(vm.FS) > 0 {
		procs, conns, err := startFS(vm, stderr)
		if err != nil {
			return fail(err)
		}
		fs, extra = procs, append(extra, conns...)
	}
	var cred *syscall.Credential
	if vm.Unprivileged() {
		err := openForQEMU(&vm, extra)
		if vm.fds != nil {
			extra = vm.fds.files // closed on the way out, those opened before a failure too
		}
		if err == nil {
			cred, err = credential(vm.RunAs)
		}
		if err != nil {
			return fail(err)
		}
	}
	argv, err := vm.Args()
	if err != nil {
		return fail(err)
	}
	p, err := start(argv, vm.Pages, stdout, stderr, extra, cred)
	if err != nil {
		return fail(err)
	}
	p.channel, p.fs = channel, fs
	for _, v := range fs {
		go p.watchShare(v)
	}
	if pc == nil {
		return p, nil
	}
	p.passt, p.passtErr, p.passtDone = pc, ptail, make(chan struct{})
	go func() {
		// passt quits by itself, status 0, once QEMU closes its end.
		err := pc.wait()
		if err != nil && !p.passtKilled.Load() {
			p.netFailed.Store(true)
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
		close(p.passtDone)
	}()
	return p, nil
}

// shareQuitGrace is how long after a virtiofsd quits QEMU may take to
// exit for its quitting to count as the VM's end (virtiofsd quits once
// QEMU has closed its connection) rather than its failure.
const shareQuitGrace = 200 * time.Millisecond

// watchShare stops QEMU should v quit while QEMU runs, as passt's
// quitting does: the guest's file operations on the folder would hang.
func (p *Process) watchShare(v virtiofsd) {
	select {
	case <-p.done:
		return
	case <-v.done:
	}
	select {
	case <-p.done:
	case <-time.After(shareQuitGrace):
		p.shareFailed.CompareAndSwap(nil, v.source)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// Start runs argv with the guest console on stdout. QEMU runs in its own
// process group (so a terminal's Ctrl-C reaches ops, which then stops
// QEMU) and dies with ops (PR_SET_PDEATHSIG). With PagesSmall, huge pages
// are turned off first (DisableHugePages).
func Start(argv []string, pages Pages, stdout, stderr io.Writer) (*Process, error) {
	return start(argv, pages, stdout, stderr, nil, nil)
}

// start is Start with extra files for QEMU, from descriptor 3 on, and
// the user to run it as (nil: ops's own).
func start(argv []string, pages Pages, stdout, stderr io.Writer, extra []*os.File, cred *syscall.Credential) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty QEMU command line")
	}
	if pages == PagesSmall {
		DisableHugePages()
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, fmt.Errorf("%s not found; install QEMU (on Debian: apt-get install qemu-system-x86, or 'make deps')", argv[0])
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = extra
	cmd.Stdout = stdout
	errBuf := &tail{max: 8192}
	notices := &dropLines{w: stderr, drop: stopNotice}
	cmd.Stderr = io.MultiWriter(notices, errBuf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, goerrors.Errorf("starting %s: %w", argv[0], err)
	}
	p := &Process{cmd: cmd, errBuf: errBuf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		notices.flush()
		close(p.done)
	}()
	return p, nil
}

// DisableHugePages turns transparent huge pages off for the calling
// process and, since the setting (PR_SET_THP_DISABLE) is inherited across
// fork and exec, for every process it starts from then on: there is no
// way to set it for a child alone. ops's own memory is small, so the
// cost is nil; a QEMU started later in the same ops (compose) gets small
// pages too, which only slows Nanos by a few ms. Kernels without the
// setting (before 3.15) keep huge pages: it is a speed-up, not a need.
func DisableHugePages() {
	_ = unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0)
}

// Channel is ops's end of the VM's Channel (nil without one); it is
// closed once QEMU has exited and Wait returned.
func (p *Process) Channel() *os.File { return p.channel }

// Pid is QEMU's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Wait waits for QEMU to exit, stopping it when ctx is cancelled: SIGTERM
// to its process group, then SIGKILL after StopGrace.
func (p *Process) Wait(ctx context.Context) *Result {
	stopped := false
	select {
	case <-p.done:
	case <-ctx.Done():
		stopped = true
		pg := -p.cmd.Process.Pid
		_ = syscall.Kill(pg, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopGrace):
			_ = syscall.Kill(pg, syscall.SIGKILL)
			<-p.done
		}
	}
	if p.channel != nil {
		p.channel.Close()
	}
	r := &Result{Status: p.cmd.ProcessState.ExitCode(), Stopped: stopped, Stderr: p.errBuf.String(), Pid: p.cmd.Process.Pid}
	if src, ok := p.shareFailed.Load().(string); ok && !stopped {
		r.ShareFailed = src
	}
	stopFS(p.fs, nil, false)
	p.fs = nil
	if p.passt != nil {
		p.passtKilled.Store(true)
		p.passt.kill()
		<-p.passtDone
		if p.netFailed.Load() && !stopped {
			r.NetFailed = passtFailed(p.passtErr.String())
			if r.NetFailed == "" {
				r.NetFailed = "passt exited"
			}
		}
	}
	return r
}

// ErrNoExitCode means the guest stopped without reporting an exit code.
var ErrNoExitCode = errors.New("the guest stopped without reporting an exit code (a kernel panic, a crash, or a power-off)")

// StartFailed reports whether QEMU itself failed (rather than the guest
// exiting): QEMU's errors are lines "qemu-system-…: message" on stderr.
func (r *Result) StartFailed() bool {
	for _, line := range strings.Split(r.Stderr, "\n") {
		if strings.HasPrefix(line, "qemu-system-") && !strings.Contains(line, "warning:") {
			return true
		}
	}
	return false
}

// QEMUError is the last error line QEMU printed.
func (r *Result) QEMUError() string {
	var last string
	for _, line := range strings.Split(r.Stderr, "\n") {
		if strings.HasPrefix(line, "qemu-system-") && !strings.Contains(line, "warning:") {
			last = line
		}
	}
	return last
}

// GuestExitCode turns QEMU's status into the guest program's exit code.
// With isa-debug-exit, a guest code N makes QEMU exit with N<<1 | 1, of
// which the process's status keeps N's low 7 bits: a code the guest also
// reported (Reported) that agrees with them is the whole one.
func (r *Result) GuestExitCode() (int, error) {
	switch {
	case r.NetFailed != "":
		return 0, fmt.Errorf("the guest's network (passt) stopped, so ops stopped the VM: %s", r.NetFailed)
	case r.ShareFailed != "":
		return 0, fmt.Errorf("virtiofsd, which shares %s with the guest, stopped, so ops stopped the VM (its lines above say why)", r.ShareFailed)
	case r.Status < 0:
		return 0, errors.New("QEMU was killed by a signal")
	case r.StartFailed():
		return 0, fmt.Errorf("QEMU failed: %s", strings.TrimSpace(r.QEMUError()))
	case r.Status&1 == 1:
		if r.Reported != nil && *r.Reported&0x7f == r.Status>>1 {
			return *r.Reported, nil
		}
		return r.Status >> 1, nil
	case r.Status == 0 && r.Reported != nil:
		return *r.Reported, nil
	case r.Status == 0:
		return 0, ErrNoExitCode
	}
	return 0, fmt.Errorf("QEMU exited with status %d", r.Status)
}

// Alive reports whether a process exists, for tests and `ops instance`.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is not alive.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
