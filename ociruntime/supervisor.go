package ociruntime

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/cgroup"
	"github.com/opsdev/ops/internal/proc"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
)

// SuperviseOptions is how the supervisor runs.
type SuperviseOptions struct {
	ID string
	// Sync is the pipe create waits on: the supervisor says it is ready
	// there, once it waits for start, and closes it.
	Sync io.WriteCloser
	// Stdout and Stderr are the container's (the guest's console goes to
	// Stdout).
	Stdout, Stderr io.Writer
	// Accel, when set, is the accelerator to use without probing the host.
	Accel qemu.Accel
	// StopTimeout is how long the guest gets to power off after SIGTERM
	// pressed its power button, before QEMU is stopped.
	StopTimeout time.Duration
	// Boot, when set, replaces booting the image (tests): it returns the
	// exit code.
	Boot func(ctx context.Context) (int, error)
	// NoSnapshot boots the Linux guest cold, not from the snapshot of its
	// image's shared base (OPS_NO_SNAPSHOT=1).
	NoSnapshot bool
}

// Exit codes of a supervisor whose VM gave none.
const (
	// ExitBootFailed: the VM could not be booted (said on Stderr).
	ExitBootFailed = 126
	// ExitNoCode: the guest stopped without reporting an exit code.
	ExitNoCode = 255
)

// Supervise is the body of a container's supervisor, its pid: it waits
// until start (or until ctx ends, at SIGTERM), boots the image through
// lepton.Machine in the network namespace it was started in, records
// the container as stopped and returns the exit code the supervisor
// exits with: the program's, or 128+N when a signal N ended it.
func (r *Runtime) Supervise(ctx context.Context, o SuperviseOptions) int {
	code, err := r.supervise(ctx, o)
	if err != nil {
		r.log("error", err.Error())
		fmt.Fprintf(o.Stderr, "ops-runtime: %v\n", err)
	}
	return code
}

func (r *Runtime) supervise(ctx context.Context, o SuperviseOptions) (int, error) {
	// Read and written: the open never blocks, and start's write finds a
	// reader for as long as this process lives.
	fifo, err := os.OpenFile(r.Store.fifo(o.ID), os.O_RDWR, 0)
	if err != nil {
		o.Sync.Close()
		return ExitBootFailed, goerrors.Wrap(err, 0)
	}
	defer fifo.Close()
	if _, err := io.WriteString(o.Sync, readyLine+"\n"); err != nil {
		return ExitBootFailed, goerrors.Wrap(err, 0)
	}
	o.Sync.Close()
	started := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := fifo.Read(b[:])
		started <- err
	}()
	select {
	case <-ctx.Done():
		return 128 + int(syscall.SIGTERM), nil // ended before start
	case err := <-started:
		if err != nil {
			return ExitBootFailed, goerrors.Wrap(err, 0)
		}
	}
	rec, err := r.Store.load(o.ID)
	if err != nil {
		return ExitBootFailed, err
	}
	var code int
	if o.Boot != nil {
		code, err = o.Boot(ctx)
	} else {
		code, err = r.boot(ctx, o, rec)
	}
	if err != nil {
		code = ExitBootFailed
	} else if gerr := giveBack(rec); gerr != nil {
		r.log("info", fmt.Sprintf("container %s: %v", o.ID, gerr))
	}
	uerr := r.Store.update(o.ID, func(rec *record) {
		rec.Status, rec.QEMU, rec.QEMUStart = Stopped, 0, 0
		rec.ExitCode = &code
		if err != nil {
			rec.Error = err.Error()
		}
	})
	if err == nil {
		err = uerr
	}
	return code, err
}

// boot boots the container's image once and returns the exit code.
func (r *Runtime) boot(ctx context.Context, o SuperviseOptions, rec *record) (int, error) {
	home := lepton.Home{Dir: rec.Home}
	c := rec.Config
	c.Guest = rec.Guest
	b, err := lepton.Existing(home, &c, lepton.Target{Output: rec.Image})
	if err != nil {
		return 0, err
	}
	n, release, err := rec.Network.prepare(func(err error) {
		r.log("debug", fmt.Sprintf("container %s: %v", o.ID, err))
	})
	if err != nil {
		return 0, err
	}
	defer release()
	qmp, cleanup, err := r.qmpPath(o.ID)
	if err != nil {
		return 0, err
	}
	defer cleanup()
	timeout := o.StopTimeout
	if o.NoSnapshot {
		off := false
		c.RunConfig.Snapshot = &off
	}
	// The ops home keeps the snapshots of the Linux guest's shared bases:
	// a container of an image whose base another container booted starts
	// from where that one's init waited, and gets its own part after.
	m := &lepton.Machine{Built: b, RunConfig: c.RunConfig, Writable: true, Accel: o.Accel, Net: n, Home: home, GiveBack: giveBackSent(rec),
		Stdout: o.Stdout, Stderr: o.Stderr, QMP: qmp,
		// The machine's own lines (QEMU retried under emulation, a full
		// volume) are the container's to show, and the log's.
		Say: func(line string) {
			r.log("info", line)
			fmt.Fprintln(o.Stderr, line)
		},
		StopTimeout: func() time.Duration { return timeout },
	}
	m.Started = func(vm qemu.VM, pid int) (func(), error) {
		start, err := proc.Start(pid)
		if err != nil {
			return nil, nil // it has exited already: Boot finds out
		}
		// QEMU goes into the container's cgroup, where the engine reads
		// its use and the container's limits hold it.
		unplace := func() {}
		if rec.Cgroup != "" {
			if unplace, err = cgroup.Place(cgroup.Root, rec.Cgroup, pid, rec.Limits); err != nil {
				r.log("warn", fmt.Sprintf("container %s: QEMU runs outside the container's cgroup %s: %v", o.ID, rec.Cgroup, err))
			}
		}
		err = r.Store.update(o.ID, func(rec *record) { rec.QEMU, rec.QEMUStart = pid, start })
		return unplace, err
	}
	out, err := m.Run(ctx)
	if err != nil {
		return 0, err
	}
	switch {
	case out.Stopped:
		return 128 + int(syscall.SIGTERM), nil
	case out.NoCode != nil:
		r.log("warn", fmt.Sprintf("container %s: %v", o.ID, out.NoCode))
		fmt.Fprintf(o.Stderr, "ops-runtime: %v\n", out.NoCode)
		return ExitNoCode, nil
	}
	return out.ExitCode, nil
}

// qmpPath is where QEMU's control socket goes (Store.qmpSocket), its
// folder made when it is not the container's; cleanup removes it.
func (r *Runtime) qmpPath(id string) (p string, cleanup func(), err error) {
	p = r.Store.qmpSocket(id)
	dir := filepath.Dir(p)
	if dir == r.Store.dir(id) {
		return p, func() {}, nil
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return "", nil, goerrors.Wrap(err, 0)
	}
	return p, func() { os.RemoveAll(dir) }, nil
}
