package instance

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/cgroup"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/internal/proc"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
)

// Policy says when the supervisor boots the guest again after it exits.
type Policy struct {
	Mode string `json:"mode"` // "no", "on-failure" or "always"
	Max  int    `json:"max"`  // on-failure: at most this many restarts; 0 means no limit
}

// ParsePolicy reads no, on-failure, on-failure:N, always (and
// unless-stopped, compose's word for always).
func ParsePolicy(s string) (Policy, error) {
	mode, n, hasN := strings.Cut(s, ":")
	switch {
	case s == "" || s == "no":
		return Policy{Mode: "no"}, nil
	case (s == "always" || s == "unless-stopped") && !hasN:
		return Policy{Mode: "always"}, nil
	case mode == "on-failure":
		p := Policy{Mode: "on-failure"}
		if hasN {
			max, err := strconv.Atoi(n)
			if err != nil || max < 1 {
				return p, fmt.Errorf("--restart %q: the count after on-failure: is a whole number from 1", s)
			}
			p.Max = max
		}
		return p, nil
	}
	return Policy{}, fmt.Errorf("--restart %q: use no, on-failure[:N] or always", s)
}

func (p Policy) String() string {
	if p.Mode == "on-failure" && p.Max > 0 {
		return fmt.Sprintf("on-failure:%d", p.Max)
	}
	if p.Mode == "" {
		return "no"
	}
	return p.Mode
}

// again reports whether a guest that ended (failed: a non-zero exit code,
// or no exit code at all) is booted again after restarts restarts.
func (p Policy) again(failed bool, restarts int) bool {
	switch p.Mode {
	case "always":
		return true
	case "on-failure":
		return failed && (p.Max == 0 || restarts < p.Max)
	}
	return false
}

// backoff is the wait before restart number n (from 0): 1 s, doubling,
// at most 30 s.
func backoff(n int) time.Duration {
	d := time.Second << min(n, 5)
	return min(d, 30*time.Second)
}

// DefaultStopTimeout is how long stop waits for the guest to power off
// after the ACPI power button before it stops QEMU.
const DefaultStopTimeout = 10 * time.Second

// requestStop asks a running instance's supervisor to stop the guest:
// the ACPI power button, then after timeout a hard stop.
func (s Store) requestStop(name string, timeout time.Duration) error {
	in, err := s.Get(name)
	if err != nil {
		return err
	}
	if !in.Active() {
		return nil
	}
	if err := fileutil.WriteAtomic(s.stopFile(name), []byte(timeout.String()), 0o644); err != nil {
		return goerrors.Wrap(err, 0)
	}
	p, err := os.FindProcess(in.Supervisor)
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	return p.Signal(os.Interrupt)
}

// SuperviseOptions is how the supervisor boots its guest.
type SuperviseOptions struct {
	// Accel, when set, is the accelerator to use without probing the host
	// (see lepton.Machine).
	Accel qemu.Accel
}

// Supervise runs an instance until its guest exits for good by its policy
// or ctx ends (ops instance stop): the body of the detached supervisor
// process. It holds the instance's volumes for as long as it runs.
func (s Store) Supervise(ctx context.Context, home lepton.Home, name string, o SuperviseOptions) (err error) {
	in, err := s.Get(name)
	if err != nil {
		return err
	}
	// What a supervisor killed before this one was writing.
	if err := fileutil.ClearStale(s.dir(name)); err != nil {
		return goerrors.Wrap(err, 0)
	}
	log, err := os.OpenFile(s.LogFile(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	defer log.Close()
	start, err := proc.Start(os.Getpid())
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	st := State{Status: Starting, Supervisor: os.Getpid(), Started: start, Restarts: in.Restarts}
	record := func(status string) {
		st.Status = status
		if werr := s.setState(name, st); werr != nil && err == nil {
			err = werr
		}
	}
	record(Starting)
	os.Remove(s.stopFile(name))
	defer func() {
		if err != nil {
			st.Error = err.Error()
			fmt.Fprintf(log, "ops: %v\n", err)
			record(Failed)
		}
	}()
	c := in.Config
	b, err := lepton.Existing(home, &c, lepton.Target{Output: in.Image})
	if err != nil {
		return err
	}
	m := s.machine(home, name, b, c.RunConfig, in.Spec, log, &st)
	m.Accel = o.Accel
	release, err := m.Prepare()
	if err != nil {
		return err
	}
	defer release()
	for {
		out, berr := m.Boot(ctx)
		if berr != nil {
			return berr
		}
		st.QEMU = 0
		if ctx.Err() != nil || out.Stopped {
			fmt.Fprintln(log, "ops: stopped")
			record(Stopped)
			return nil
		}
		code, gotCode := out.ExitCode, out.NoCode == nil
		if gotCode {
			st.ExitCode = &code
			fmt.Fprintf(log, "ops: the program exited with %d\n", code)
		} else {
			st.ExitCode = nil
			fmt.Fprintln(log, "ops: the guest stopped without an exit code")
		}
		if !in.Restart.again(!gotCode || code != 0, st.Restarts) {
			record(Exited)
			return nil
		}
		wait := backoff(st.Restarts)
		st.Restarts++
		fmt.Fprintf(log, "ops: restarting in %v (restart %d, policy %s)\n", wait, st.Restarts, in.Restart)
		record(Restarting)
		select {
		case <-ctx.Done():
			record(Stopped)
			return nil
		case <-time.After(wait):
		}
	}
}

// machine is the instance's VM: its network the one the spec recorded (a
// compose project's), its QMP socket the instance's, its ports waited for
// (the previous QEMU, killed or stopped a moment ago, may still hold them
// while it exits), stopped by the power button and the timeout ops
// instance stop asked for. Each QEMU that starts is confined to the
// instance's cgroup, recorded as running, and probed for health while it
// runs. A restart starts from the image's snapshot (see lepton.Machine).
func (s Store) machine(home lepton.Home, name string, b *lepton.Built, rc lepton.RunConfig, spec Spec, log io.Writer, st *State) *lepton.Machine {
	m := &lepton.Machine{Built: b, RunConfig: rc, Stdout: log, Stderr: log, Home: home,
		Say:         func(line string) { fmt.Fprintln(log, line) },
		QMP:         s.qmpSocket(name),
		PortWait:    5 * time.Second,
		StopTimeout: func() time.Duration { return s.stopTimeout(name) },
		Net:         spec.Net,
	}
	m.Started = func(vm qemu.VM, pid int) (func(), error) {
		unconfine, lerr := confine(cgroup.Root, name, pid, limitsFor(vm.MemoryMB, vm.CPUs))
		if lerr != nil {
			fmt.Fprintf(log, "ops: this instance runs without memory and CPU limits: %v\n", lerr)
		}
		st.QEMU = pid
		st.Status = Running
		if err := s.setState(name, *st); err != nil {
			return unconfine, err
		}
		if spec.Health == nil {
			return unconfine, nil
		}
		probing, stopProbing := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.watchHealth(probing, name, *spec.Health) }()
		return func() { stopProbing(); <-done; s.clearHealth(name); unconfine() }, nil
	}
	return m
}

// Start starts the instance's supervisor, self ("ops") running
// `instance supervise NAME`, detached (a session of its own, no terminal),
// and waits until the guest is booting.
func (s Store) Start(self, name string) (*Instance, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	defer devnull.Close()
	sup := exec.Command(self, "instance", "supervise", name)
	sup.Stdin, sup.Stdout, sup.Stderr = devnull, devnull, devnull
	sup.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := sup.Start(); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	pid := sup.Process.Pid
	go sup.Wait() // reaped here if it ends while we wait
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		in, err := s.Get(name)
		if err == nil && in.Supervisor == pid && in.Status != Starting {
			if in.Status == Failed {
				return nil, fmt.Errorf("instance %s failed: %s", name, in.Error)
			}
			return in, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("instance %s: the supervisor (pid %d) did not start the guest within 30 s; see ops instance logs %s", name, pid, name)
}

// Stop asks the supervisor to stop and waits for it to end; one that
// does not end in time is killed (QEMU dies with it).
func (s Store) Stop(name string, timeout time.Duration) error {
	in, err := s.Get(name)
	if err != nil || !in.Active() {
		return err
	}
	if err := s.requestStop(name, timeout); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout + 10*time.Second)
	for proc.Alive(in.Supervisor, in.Started) {
		if time.Now().After(deadline) {
			syscall.Kill(in.Supervisor, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// stopTimeout is the timeout stop asked for (DefaultStopTimeout when it
// left none).
func (s Store) stopTimeout(name string) time.Duration {
	b, err := os.ReadFile(s.stopFile(name))
	if err != nil {
		return DefaultStopTimeout
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil || d < 0 {
		return DefaultStopTimeout
	}
	return d
}
