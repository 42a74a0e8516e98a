package lepton

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opsdev/ops/netlink"
	"github.com/opsdev/ops/qemu"
)

// RunOptions is how a built image runs in the foreground.
type RunOptions struct {
	Run      RunConfig
	Writable bool   // boot the image itself (ops run -s), not a snapshot
	QEMU     string // QEMU binary; "" is qemu-system-x86_64
	Stdout   io.Writer
	Stderr   io.Writer
	// Say takes ops's own lines: the retry notice always, and the image,
	// accelerator, forwards and QEMU command line with Run.Verbose.
	Say func(line string)
}

// Outcome is how a run ended.
type Outcome struct {
	ExitCode int  // the guest program's exit code
	Stopped  bool // ctx ended the run (Ctrl-C) before the guest exited
}

// Run boots a built image and waits for the guest to exit or ctx to end.
// It picks the accelerator, sets up a tap device when asked (removing what
// it made on return) and, when QEMU fails to start under KVM, boots again
// under emulation.
func Run(ctx context.Context, b *Built, o RunOptions) (Outcome, error) {
	say := o.Say
	if say == nil {
		say = func(string) {}
	}
	allow := (o.Run.Accel == nil || *o.Run.Accel) && !o.Run.Debug // a debugger wants emulation, as in nanovms/ops
	accel, why := qemu.DecideAccel(qemu.HostProbe(allow))
	release, err := b.LockVolumes()
	if err != nil {
		return Outcome{}, err
	}
	defer release()
	qmp := ""
	if o.Run.QMP && o.Run.Mgmt == "" { // with Mgmt, QMP listens on that TCP port (DebugVM)
		qmp = filepath.Join(os.TempDir(), fmt.Sprintf("ops-%d.qmp", os.Getpid()))
		defer os.Remove(qmp)
		say("QMP socket: " + qmp)
	}
	// The VM depends on the accelerator (emulation gets its own CPU flags,
	// memory backing and guest clock hint), so a retry under TCG remakes it.
	makeVM := func(a qemu.Accel) (qemu.VM, error) {
		vm, err := b.Guest.VM(Boot{Image: b.BuildResult, Run: o.Run, Accel: a, Writable: o.Writable, Mounts: b.Mounts})
		vm.Binary = o.QEMU
		if qmp != "" {
			vm.QMP = qmp
		}
		return vm, err
	}
	vm, err := makeVM(accel)
	if err != nil {
		return Outcome{}, err
	}
	if err := qemu.CheckFree(vm.Net.Forwards); err != nil {
		return Outcome{}, err
	}
	if vm.Net.Mode == "tap" {
		remove, err := netlink.SetupTap(o.Run.TapName, o.Run.BridgeName, o.Run.BridgeIPAddress, o.Run.NetMask)
		defer remove()
		if err != nil {
			return Outcome{}, err
		}
	}
	if o.Run.Verbose {
		state := "built"
		if b.Reused {
			state = "reused"
		}
		say(fmt.Sprintf("image %s (%s guest, %s in %v); accel %s: %s", b.Path, b.Guest.Name(), state, b.Took.Round(time.Millisecond), accel, why))
		for _, fw := range vm.Net.Forwards {
			say(fmt.Sprintf("forward %s", fw))
		}
	}
	boot := func(vm qemu.VM) (*qemu.Result, error) {
		if ctx.Err() != nil {
			return &qemu.Result{Stopped: true}, nil
		}
		argv, err := vm.Args()
		if err != nil {
			return nil, err
		}
		if o.Run.Verbose {
			if vm.Net.Passt != "" {
				say(qemu.PasstLine(vm.Net))
			}
			say(qemu.ShellLine(argv))
			if vm.Unprivileged() {
				say("QEMU runs as " + vm.RunAs + ", given descriptors for its disks, kernel, tap device and QMP socket in place of the paths above")
			}
		}
		p, err := qemu.StartVM(vm, o.Stdout, o.Stderr)
		if err != nil {
			return nil, err
		}
		return p.Wait(ctx), nil
	}
	res, err := boot(vm)
	if err != nil {
		return Outcome{}, err
	}
	if accel == qemu.KVM && !res.Stopped && res.StartFailed() {
		say(fmt.Sprintf("ops: QEMU failed under KVM (%s); retrying with software emulation", strings.TrimSpace(res.QEMUError())))
		if vm, err = makeVM(qemu.TCG); err != nil {
			return Outcome{}, err
		}
		if res, err = boot(vm); err != nil {
			return Outcome{}, err
		}
	}
	for _, m := range b.Mounts {
		if note := m.Volume.FullNote(); note != "" {
			say(note)
		}
	}
	if res.Stopped {
		return Outcome{Stopped: true}, nil
	}
	code, err := res.GuestExitCode()
	return Outcome{ExitCode: code}, err
}
