package lepton

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/guestinit"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/netlink"
	"github.com/opsdev/ops/qemu"
)

// Machine is one VM's life, the one way ops starts a VM: `ops run`, the
// instance supervisor and compose's foreground services each fill one in
// and call its steps.
//
//   - Prepare: the volumes locked, the tap device the run config names made
//     (undone by the function it returns).
//   - Boot: the accelerator chosen, the guest's VM described,
//     the forwarded host ports free, QEMU started (sandboxed, unprivileged
//     as root), Started called, and the wait for the guest's exit code;
//     when QEMU fails to start under KVM, Boot says so and boots again
//     under software emulation. When ctx ends, Boot stops the VM: the power
//     button, then after StopTimeout a hard stop (at once without a QMP
//     socket or a StopTimeout).
//
// Run does both, once. A caller that boots the same machine again (the
// supervisor's restart policy) calls Prepare once and Boot each time.
type Machine struct {
	Built     *Built
	RunConfig RunConfig
	Writable  bool   // boot the image itself (ops run -s), not a snapshot of it
	QEMU      string // QEMU binary; "" is the architecture's qemu-system-*
	Stdout    io.Writer
	Stderr    io.Writer
	// Say takes the machine's own lines: the retry notice and full volumes
	// always; with Verbose, the image, the accelerator, the forwards and the
	// QEMU command line.
	Say     func(line string)
	Verbose bool
	// Accel, when set, is the accelerator to use without probing the host
	// (OPS_ACCEL). A failing KVM still falls back to emulation.
	Accel qemu.Accel
	// Probe reads the host for the accelerator decision; nil reads this one.
	Probe func(allow bool) qemu.AccelProbe
	// QMP is the path of QEMU's control socket, removed before and after
	// each boot. "" makes none, unless Run.QMP asks for one (a temporary
	// socket, said on Say).
	QMP string
	// Net, when set, is the network the caller made, in place of the one
	// RunConfig describes: a compose project's namespace or bridge, an
	// instance's recorded network. Prepare then makes no tap device.
	Net *qemu.Net
	// PortWait is how long Boot waits for the forwarded host ports to be
	// free (a QEMU that was just stopped may hold them while it exits); 0
	// checks once.
	PortWait time.Duration
	// StopTimeout, when set, is how long a VM whose ctx ended gets to power
	// off after the ACPI power button before QEMU is stopped.
	StopTimeout func() time.Duration
	// Home, when set, keeps the snapshots of its images' VMs (snapshot.go):
	// a guest that has a snapshot point starts from the state its first
	// run saved there, unless RunConfig.Snapshot is false.
	Home Home
	// Started is called with each QEMU's VM and process ID once it runs (a
	// retry under emulation starts a second); the function it returns runs
	// once that QEMU has exited. An error stops the VM and ends Boot with it.
	Started func(vm qemu.VM, pid int) (exited func(), err error)
	// GiveBack, when set, takes what the program left in each of the
	// image's GiveBack files (PlanInput.GiveBack), as the Linux guest
	// sends them when it has exited; Nanos leaves them in its image.
	GiveBack func(guestPath string, data []byte) error
}

// Outcome is how a boot ended.
type Outcome struct {
	ExitCode int  // the guest program's exit code
	Stopped  bool // ctx ended the run (Ctrl-C, ops instance stop) before the guest exited
	// NoCode says why the guest gave no exit code (nil when it gave one):
	// qemu.ErrNoExitCode, QEMU killed, the network lost.
	NoCode error
}

func (m *Machine) say(line string) {
	if m.Say != nil {
		m.Say(line)
	}
}

// Prepare locks the image's volumes and makes the tap device the run
// config names (unless the caller made the network); release undoes both.
func (m *Machine) Prepare() (release func(), err error) {
	unlock, err := m.Built.lockVolumes()
	if err != nil {
		return func() {}, err
	}
	if !m.RunConfig.usesTap() || m.Net != nil {
		return unlock, nil
	}
	remove, err := netlink.SetupTap(m.RunConfig.TapName, m.RunConfig.BridgeName, m.RunConfig.BridgeIPAddress, m.RunConfig.NetMask)
	release = func() { remove(); unlock() }
	if err != nil {
		release()
		return func() {}, err
	}
	return release, nil
}

// Run prepares the machine, boots it once and releases what Prepare made.
func (m *Machine) Run(ctx context.Context) (Outcome, error) {
	release, err := m.Prepare()
	if err != nil {
		return Outcome{}, err
	}
	defer release()
	return m.Boot(ctx)
}

// accel chooses the accelerator: Accel when set, else KVM where it really
// works (qemu.DecideAccel), unless the run config turns it off or asks
// for a debugger, which wants emulation (as in nanovms/ops).
func (m *Machine) accel() (qemu.Accel, string) {
	if m.Accel != "" {
		return m.Accel, "OPS_ACCEL=" + string(m.Accel)
	}
	probe := qemu.HostProbe
	if m.Probe != nil {
		probe = m.Probe
	}
	allow := (m.RunConfig.Accel == nil || *m.RunConfig.Accel) && !m.RunConfig.Debug
	p := probe(allow)
	p.Guest = m.Built.Guest.Arch()
	return qemu.DecideAccel(p)
}

// vm is the QEMU machine that boots the image under accel: it depends on
// the accelerator (emulation has its own CPU flags, memory backing and
// guest clock hint), so a retry under emulation makes it again.
func (m *Machine) vm(accel qemu.Accel, qmp, scratch string) (qemu.VM, error) {
	b := m.Built
	vm, err := b.Guest.VM(Boot{Image: b.BuildResult, Run: m.RunConfig, Accel: accel, Writable: m.Writable, Mounts: b.Mounts, Shares: b.Shares, Snapshot: m.snapshots(), Scratch: scratch, GiveBack: m.GiveBack != nil})
	if err != nil {
		return vm, err
	}
	vm.Binary = m.QEMU
	if qmp != "" {
		vm.QMP = qmp
	}
	if m.Net != nil {
		vm.Net = *m.Net
	}
	return vm, nil
}

// Check describes the VM and its QEMU command line without starting it,
// so a caller that starts several (compose) finds a bad one before any
// starts.
func (m *Machine) Check() error {
	vm, err := m.vm(qemu.TCG, m.QMP, os.TempDir())
	if err != nil {
		return err
	}
	_, err = vm.Args()
	return err
}

// Boot boots the prepared machine once and waits for the guest to exit or
// ctx to end.
func (m *Machine) Boot(ctx context.Context) (Outcome, error) {
	accel, why := m.accel()
	qmp := m.QMP
	if qmp == "" && m.RunConfig.QMP && m.RunConfig.Mgmt == "" { // with Mgmt, QMP listens on that TCP port (DebugVM)
		qmp = filepath.Join(os.TempDir(), fmt.Sprintf("ops-%d.qmp", os.Getpid()))
		m.say("QMP socket: " + qmp)
	}
	if qmp != "" {
		os.Remove(qmp)
		defer os.Remove(qmp)
	}
	scratch, err := m.scratch()
	if err != nil {
		return Outcome{}, err
	}
	defer os.RemoveAll(scratch)
	vm, err := m.vm(accel, qmp, scratch)
	if err != nil {
		return Outcome{}, err
	}
	if err := m.portsFree(ctx, vm.Net); err != nil {
		return Outcome{}, err
	}
	if m.Verbose {
		b := m.Built
		state := "built"
		if b.Reused {
			state = "reused"
		}
		m.say(fmt.Sprintf("image %s (%s guest, %s in %v); accel %s: %s", b.Path, b.Guest.Name(), state, b.Took.Round(time.Millisecond), accel, why))
		for _, fw := range vm.Net.Forwards {
			m.say(fmt.Sprintf("forward %s", fw))
		}
	}
	res, err := m.start(ctx, vm)
	if err != nil {
		return Outcome{}, err
	}
	if accel == qemu.KVM && !res.Stopped && ctx.Err() == nil && res.StartFailed() {
		m.say(fmt.Sprintf("ops: QEMU failed under KVM (%s); retrying with software emulation", strings.TrimSpace(res.QEMUError())))
		if vm, err = m.vm(qemu.TCG, qmp, scratch); err != nil {
			return Outcome{}, err
		}
		if res, err = m.start(ctx, vm); err != nil {
			return Outcome{}, err
		}
	}
	for _, mt := range m.Built.Mounts {
		if note := mt.Volume.FullNote(); note != "" {
			m.say(note)
		}
	}
	if res.Stopped || ctx.Err() != nil {
		return Outcome{Stopped: true}, nil
	}
	if res.StartFailed() {
		return Outcome{}, fmt.Errorf("QEMU failed: %s", strings.TrimSpace(res.QEMUError()))
	}
	code, err := m.Built.Guest.exitCode(vm, res)
	if err != nil {
		return Outcome{NoCode: err}, nil
	}
	return Outcome{ExitCode: code}, nil
}

// scratch makes the boot's own folder (Boot.Scratch) beside the image,
// named so that a later build clears it should ops be killed; in the
// temporary folder when the image's cannot be written.
func (m *Machine) scratch() (string, error) {
	dir, err := fileutil.MkdirTemp(filepath.Dir(m.Built.Path), filepath.Base(m.Built.Path)+".run")
	if err != nil {
		dir, err = fileutil.MkdirTemp(os.TempDir(), "ops-run")
	}
	if err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // an unprivileged QEMU reads by descriptor; ops by path
		return "", goerrors.Wrap(err, 0)
	}
	return dir, nil
}

// portsFree checks that the forwarded host ports are free, waiting up to
// PortWait for them. Ports in a network namespace are its own.
func (m *Machine) portsFree(ctx context.Context, n qemu.Net) error {
	if n.Namespace != "" {
		return nil
	}
	deadline := time.Now().Add(m.PortWait)
	for {
		err := qemu.CheckFree(n.Forwards)
		if err == nil || !time.Now().Before(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// start runs vm once: from its snapshot when it has a usable one, else
// booting (and saving the snapshot at the guest's snapshot point). A
// snapshot that QEMU cannot restore, or whose file is not the one saved,
// is removed, with one line, and the VM boots.
func (m *Machine) start(ctx context.Context, vm qemu.VM) (*qemu.Result, error) {
	if vm.Channel == "" {
		return m.once(ctx, vm, nil)
	}
	if !strings.Contains(vm.Append, guestinit.SnapshotArg) {
		return m.once(ctx, vm, &channelJob{exitOnly: true})
	}
	snap, err := m.snapshotFor(vm)
	if err != nil {
		m.say(fmt.Sprintf("ops: no snapshot for this run: %v", err))
		return m.once(ctx, vm, &channelJob{})
	}
	unusable := func(why error) {
		m.say(fmt.Sprintf("ops: the snapshot of %s could not be used (%v); booting", filepath.Base(m.Built.Path), why))
	}
	meta, ok, damaged := snap.usable()
	if damaged != nil {
		unusable(damaged)
		snap.remove()
	}
	if ok {
		// The state is opened once: QEMU restores from this file and ops
		// checks this file, whatever a concurrent save renames into place.
		f, err := os.Open(snap.state)
		if err != nil {
			return nil, goerrors.Wrap(err, 0)
		}
		defer f.Close()
		rvm := vm
		rvm.Incoming = fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		// Restoring writes the saved memory in one sweep, which huge pages
		// take ~30 ms sooner than small ones (qemu.PagesSmall is for a
		// booting guest's scattered first touches).
		rvm.Pages = qemu.PagesDefault
		job := &channelJob{restore: snap, meta: meta, state: f}
		res, err := m.once(ctx, rvm, job)
		why := job.failed
		if err == nil && why == nil && res.StartFailed() && !res.Stopped && restoreFailed(res.QEMUError()) {
			why = errors.New(strings.TrimSpace(res.QEMUError()))
		}
		if err != nil || why == nil {
			// QEMU failing for another reason (a port taken since, KVM)
			// is Boot's to handle, the snapshot kept.
			return res, err
		}
		unusable(why)
		snap.removeIf(f)
	}
	if strings.HasPrefix(vm.QMP, "tcp:") {
		// QEMU's monitor is the user's, on TCP (--qmp with Mgmt): a
		// descriptor cannot be passed there, so this run saves nothing.
		return m.once(ctx, vm, &channelJob{})
	}
	return m.once(ctx, vm, &channelJob{save: snap})
}

// channelJob is what ops does on a VM's channel: restore (check the
// state's checksum, then send the run's information), save (wait for the
// snapshot point, save the VM there, then send it), or, with neither,
// only send it once the guest is ready; then, and alone with exitOnly,
// take the exit code init reports there on a machine without an exit
// device.
type channelJob struct {
	restore  *snapshot
	meta     snapshotMeta
	state    *os.File // the restored state, as QEMU reads it
	save     *snapshot
	exitOnly bool  // no snapshot point: the channel carries the exit code only
	failed   error // the restored state was not the one saved; QEMU was stopped
	code     *int  // the exit code init reported
	// giveBack takes the files init gives back before the code
	// (Machine.GiveBack); say says what could not be.
	giveBack func(guestPath string, data []byte) error
	say      func(string)
}

// serve does the job on p's channel; stop stops QEMU.
func (m *Machine) serve(j *channelJob, vm qemu.VM, p *qemu.Process, stop func()) {
	ch := p.Channel()
	if j.exitOnly {
		j.awaitExit(ch)
		return
	}
	switch {
	case j.restore != nil:
		// Init waits at its snapshot point, in the restored memory, until
		// it reads this run's line: nothing of the program runs before
		// the state is known to be the one saved.
		if err := check(j.state, j.meta); err != nil {
			j.failed = err
			stop()
			return
		}
		j.restore.used()
	default:
		if err := awaitReady(ch); err != nil {
			if !errors.Is(err, errNoReady) {
				// A guest that says something else waits at its
				// snapshot point for good.
				m.say("ops: " + err.Error())
				stop()
			}
			return
		}
		if j.save != nil {
			if err := j.save.save(vm.QMP); err != nil {
				m.say(fmt.Sprintf("ops: saving the snapshot of %s: %v (the next run boots again)", filepath.Base(m.Built.Path), err))
			} else if m.ownOnChannel(vm) != "" {
				m.Home.pruneSharedSnapshots()
			} else {
				m.Home.pruneImageSnapshots(j.save)
			}
		}
	}
	if err := m.sendRunInfo(ch, vm); err != nil {
		m.say(fmt.Sprintf("ops: the guest's channel: %v", err))
		stop()
		return
	}
	j.awaitExit(ch)
}

// sendRunInfo sends init this run's line and, for an image over a shared
// base, the image's own part after it (ownOnChannel).
func (m *Machine) sendRunInfo(ch io.Writer, vm qemu.VM) error {
	own := m.ownOnChannel(vm)
	if own == "" {
		line, err := runInfo(0, "")
		if err == nil {
			_, err = ch.Write(line)
		}
		return err
	}
	f, err := os.Open(own)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	line, err := runInfo(st.Size(), vm.Net.MAC)
	if err != nil {
		return err
	}
	if _, err := ch.Write(line); err != nil {
		return err
	}
	_, err = io.Copy(ch, f)
	return err
}

// awaitExit reads the channel until it closes (QEMU exited), taking the
// exit code init reports there and acknowledging it: init powers off only
// once the host has its code.
func (j *channelJob) awaitExit(ch io.ReadWriter) {
	r := bufio.NewReader(ch)
	for {
		line, err := r.ReadBytes('\n')
		if path, n, ok := guestinit.ParseFileLine(line); ok && err == nil {
			data := make([]byte, n)
			if _, err := io.ReadFull(r, data); err != nil {
				return
			}
			if j.giveBack == nil {
				continue
			}
			if err := j.giveBack(path, data); err != nil && j.say != nil {
				j.say(fmt.Sprintf("ops: giving back %s: %v", path, err))
			}
			continue
		}
		if code, ok := guestinit.ParseExitLine(line); ok {
			j.code = &code
			if _, err := io.WriteString(ch, guestinit.ExitAck); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// once starts QEMU for vm and waits for it to exit, stopping it when ctx
// ends; with job, it serves the VM's channel meanwhile.
func (m *Machine) once(ctx context.Context, vm qemu.VM, job *channelJob) (*qemu.Result, error) {
	if ctx.Err() != nil {
		return &qemu.Result{Stopped: true}, nil
	}
	if job != nil {
		job.giveBack, job.say = m.GiveBack, m.say
	}
	if m.Verbose {
		argv, err := vm.Args()
		if err != nil {
			return nil, err
		}
		if vm.Net.Passt != "" {
			m.say(qemu.PasstLine(vm.Net))
		}
		for _, s := range vm.FS {
			m.say(qemu.VirtiofsdLine(s))
		}
		m.say(qemu.ShellLine(argv))
		for _, d := range vm.Drives {
			if d.Overlay != "" && !d.Image {
				m.say(fmt.Sprintf("%s takes the guest's writes to %s for this boot only (by hand: -drive file=%s,format=raw,snapshot=on in place of its -blockdev nodes)", d.Overlay, d.File, d.File))
			}
		}
		if vm.Unprivileged() {
			m.say("QEMU runs as " + vm.RunAs + ", given descriptors for its disks, kernel, tap device and QMP socket in place of the paths above")
		}
	}
	if job != nil && job.save != nil && vm.QMP == "" {
		// Saving goes through QMP: a socket of this boot's own (compose
		// --bridged boots several machines in one process at once).
		dir, err := os.MkdirTemp("", "ops-save-")
		if err != nil {
			return nil, goerrors.Wrap(err, 0)
		}
		defer os.RemoveAll(dir)
		if err := os.Chmod(dir, 0o755); err != nil { // an unprivileged QEMU gets the socket as a descriptor; ops dials the path
			return nil, goerrors.Wrap(err, 0)
		}
		vm.QMP = filepath.Join(dir, "qmp")
	}
	if err := m.Built.Guest.prepare(vm); err != nil {
		return nil, err
	}
	p, err := qemu.StartVM(vm, m.Stdout, m.Stderr)
	if err != nil {
		return nil, err
	}
	// hard stops QEMU: SIGTERM, then SIGKILL (qemu.Process.Wait).
	hard, stopQEMU := context.WithCancel(context.Background())
	defer stopQEMU()
	served := make(chan struct{})
	if job != nil {
		defer func() { <-served }() // the channel closes as QEMU exits
		go func() { defer close(served); m.serve(job, vm, p, stopQEMU) }()
	}
	exited := make(chan struct{})
	if m.Started != nil {
		after, err := m.Started(vm, p.Pid())
		if after != nil {
			defer after() // QEMU has exited by then
		}
		if err != nil {
			stopQEMU()
			p.Wait(hard)
			return nil, err
		}
	}
	go func() {
		select {
		case <-exited:
			return
		case <-ctx.Done():
		}
		m.stop(vm, exited, stopQEMU)
	}()
	res := p.Wait(hard)
	close(exited)
	if job != nil {
		<-served // the channel closed as QEMU exited
		res.Reported = job.code
	}
	if ctx.Err() != nil {
		res.Stopped = true
	}
	return res, nil
}

// stop is the end of a VM whose ctx ended: the ACPI power button and
// StopTimeout to power off, then a hard stop; a hard stop at once without
// a QMP socket or a StopTimeout, or when the button cannot be pressed.
func (m *Machine) stop(vm qemu.VM, exited <-chan struct{}, hard func()) {
	if m.StopTimeout == nil || vm.QMP == "" || strings.HasPrefix(vm.QMP, "tcp:") {
		hard()
		return
	}
	timeout := m.StopTimeout()
	if err := qemu.QMP(vm.QMP, "system_powerdown", 2*time.Second); err != nil {
		hard()
		return
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		hard()
	}
}
