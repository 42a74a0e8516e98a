package ociruntime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/internal/proc"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/pkgenv"
	"golang.org/x/sys/unix"
)

// Runtime runs the lifecycle commands over one store.
type Runtime struct {
	Store Store
	// Log takes the runtime's own lines, by level ("debug", "info",
	// "warn", "error"); nil drops them.
	Log func(level, msg string)
	// Self is the program the supervisor runs (/proc/self/exe), with
	// SuperviseArgs after argv[0] ("ops-runtime") making it one; the
	// container's ID follows them.
	Self          string
	SuperviseArgs []string
}

func (r *Runtime) log(level, msg string) {
	if r.Log != nil {
		r.Log(level, msg)
	}
}

// CreateOptions is `create`'s input.
type CreateOptions struct {
	ID, Bundle, PidFile string
	// ConsoleSocket, when set, receives the pty master (the spec's
	// process.terminal); the supervisor's standard streams are its slave.
	ConsoleSocket string
	// Home is the ops home the image is built with, and Guest the guest
	// to boot ("": Nanos when a release is installed, else Linux).
	Home  lepton.Home
	Guest string
	// Stdio is create's standard input, output and error: the
	// container's, which the supervisor inherits.
	Stdio [3]*os.File
	// Env is the supervisor's environment.
	Env []string
	// Build builds the image; nil is LeptonBuild(lepton.Build).
	Build      BuildFunc
	OpsVersion string
}

// Image is what a build made: the image's path, its guest's name and the
// line said when the guest was chosen by falling back.
type Image struct{ Path, Guest, Note string }

// BuildFunc builds a container's image from its plan input into
// target.Output.
type BuildFunc func(lepton.Home, lepton.PlanInput, lepton.Target) (Image, error)

// LeptonBuild is the BuildFunc of a lepton build function
// (lepton.Build, or a lepton.Builder's Build).
func LeptonBuild(build func(lepton.Home, lepton.PlanInput, lepton.Target) (*lepton.Built, error)) BuildFunc {
	return func(h lepton.Home, in lepton.PlanInput, t lepton.Target) (Image, error) {
		b, err := build(h, in, t)
		if err != nil {
			return Image{}, err
		}
		return Image{Path: b.Path, Guest: b.Guest.Name(), Note: b.Note}, nil
	}
}

// imageName is the image's file in the container's folder.
const imageName = "image"

// Create makes the container: the spec read and checked, the supervisor
// started (in the container's network namespace) and waiting, the
// prestart and createRuntime hooks run, the network chosen from the
// namespace they filled, the image built from the root filesystem and
// the process, and the supervisor's pid written to the pid file. On an
// error nothing is left: no supervisor, no folder.
func (r *Runtime) Create(o CreateOptions) (err error) {
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	spec, err := ReadSpec(bundle)
	if err != nil {
		return err
	}
	if spec.Process.Terminal && o.ConsoleSocket == "" {
		return errors.New("process.terminal is set: pass --console-socket")
	}
	mounts, err := planMounts(spec.Mounts)
	if err != nil {
		return err
	}
	if ign := spec.Ignored(); len(ign) > 0 {
		r.log("debug", "a unikernel ignores: "+strings.Join(ign, "; "))
	}
	for _, n := range mounts.Notes {
		r.log("debug", n)
	}
	unlock, err := r.Store.make(o.ID)
	if err != nil {
		return err
	}
	defer unlock()
	rec := &record{ID: o.ID, Bundle: bundle, Rootfs: spec.RootPath(bundle), Created: time.Now().UTC(),
		Annotations: spec.Annotations, Status: Creating, Home: o.Home.Dir}
	if spec.Hooks != nil {
		rec.Poststart, rec.Poststop = spec.Hooks.Poststart, spec.Hooks.Poststop
	}
	defer func() {
		if err != nil {
			r.destroy(rec)
		}
	}()
	if err := r.Store.save(rec); err != nil {
		return err
	}
	if err := unix.Mkfifo(r.Store.fifo(o.ID), 0o600); err != nil {
		return goerrors.Errorf("making the start fifo: %w", err)
	}
	if rec.Supervisor, err = r.startSupervisor(o, spec); err != nil {
		return err
	}
	if rec.SupervisorStart, err = proc.Start(rec.Supervisor); err != nil {
		return fmt.Errorf("the supervisor (pid %d) ended as it started", rec.Supervisor)
	}
	if err := r.Store.save(rec); err != nil {
		return err
	}
	if spec.Hooks != nil {
		if err := runHooks("prestart", spec.Hooks.Prestart, rec.state()); err != nil {
			return err
		}
		if err := runHooks("createRuntime", spec.Hooks.CreateRuntime, rec.state()); err != nil {
			return err
		}
	}
	ns, _ := spec.NetworkNamespace()
	rec.Netns = ns
	if ns == "" {
		ns = fmt.Sprintf("/proc/%d/ns/net", rec.Supervisor)
	}
	if err := inNetns(ns, func() (err error) { rec.Network, err = readNetwork(); return err }); err != nil {
		return err
	}
	// The engine's files as the hooks left them: Docker's prestart hook
	// writes its resolver (127.0.0.11 on a user-defined network) into
	// resolv.conf.
	if mounts, err = planMounts(spec.Mounts); err != nil {
		return err
	}
	rec.Network.relayDNS(mounts.Extra)
	r.log("debug", "network: "+rec.Network.String())
	start := time.Now()
	b, cfg, err := r.build(o, spec, rec, mounts)
	if err != nil {
		return err
	}
	r.log("debug", fmt.Sprintf("image %s (%s guest) built in %v", b.Path, b.Guest, time.Since(start).Round(time.Millisecond)))
	if b.Note != "" {
		r.log("info", b.Note)
	}
	rec.Image, rec.Guest, rec.Config, rec.GiveBack = b.Path, b.Guest, cfg, mounts.GiveBack
	rec.Status = Created
	if err := r.Store.save(rec); err != nil {
		return err
	}
	if o.PidFile != "" {
		if err := fileutil.WriteAtomic(o.PidFile, []byte(strconv.Itoa(rec.Supervisor)), 0o644); err != nil {
			return goerrors.Errorf("writing --pid-file: %w", err)
		}
	}
	return nil
}

// build makes the container's image in its folder: the root filesystem
// and the process, the engine's files and read-only mounts over them.
func (r *Runtime) build(o CreateOptions, spec *Spec, rec *record, mounts imageMounts) (Image, lepton.Config, error) {
	user := &lepton.Config{Guest: o.Guest, Hostname: spec.Hostname, Mounts: mounts.Shares}
	rec.Network.configure(user)
	var memoryMB, cpus int
	var err error
	if rec.Cgroup, rec.Limits, memoryMB, cpus, err = limits(spec); err != nil {
		return Image{}, lepton.Config{}, err
	}
	sizeVM(user, memoryMB, cpus)
	in, note, err := pkgenv.RootfsInput(user, pkgenv.RootfsProcess{Rootfs: rec.Rootfs, Args: spec.Process.Args, Env: spec.Process.Env, Cwd: spec.Process.Cwd})
	if err != nil {
		return Image{}, lepton.Config{}, err
	}
	if note != "" {
		r.log("info", note)
	}
	in.Layers = append(in.Layers, mounts.Layers...)
	in.Files = append(in.Files, mounts.Files...)
	for _, f := range mounts.GiveBack {
		in.GiveBack = append(in.GiveBack, f.Guest)
	}
	in.Extra = append(in.Extra, mounts.Extra...)
	in.OpsVersion = o.OpsVersion
	build := o.Build
	if build == nil {
		build = LeptonBuild(lepton.Build)
	}
	name := o.ID
	if len(name) > 12 {
		name = name[:12]
	}
	// On Nanos the image is an overlay over a base that the containers
	// of one image share (their root filesystem's files, the kernel): a
	// second container of it writes only its own part.
	shared := &lepton.SharedParts{Dir: r.Store.basesDir()}
	for _, l := range slices.Concat(mounts.Layers, mounts.Files, mounts.GiveBack) {
		shared.Own = append(shared.Own, l.Host)
	}
	b, err := build(o.Home, in, lepton.Target{Output: filepath.Join(r.Store.dir(o.ID), imageName), DefaultName: name, Shared: shared})
	if err != nil {
		return Image{}, lepton.Config{}, err
	}
	return b, *in.Config, nil
}

// readyLine is what the supervisor says on its sync pipe once it waits
// for start.
const readyLine = "ready"

// startSupervisor starts the container's supervisor in the container's
// network namespace (joined, or new), in a session of its own, with
// create's standard streams (or the pty's slave), and waits until it
// waits for start.
func (r *Runtime) startSupervisor(o CreateOptions, spec *Spec) (int, error) {
	// What the engine handed create beyond the standard streams is not
	// the supervisor's to keep.
	if err := closeExecFrom(3); err != nil {
		return 0, err
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return 0, goerrors.Wrap(err, 0)
	}
	defer syncR.Close()
	cmd := &exec.Cmd{Path: r.Self, Args: append(append([]string{"ops-runtime"}, r.SuperviseArgs...), o.ID), Env: o.Env,
		Stdin: o.Stdio[0], Stdout: o.Stdio[1], Stderr: o.Stdio[2], ExtraFiles: []*os.File{syncW},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if o.ConsoleSocket != "" {
		master, slave, err := openPty()
		if err != nil {
			syncW.Close()
			return 0, err
		}
		defer master.Close()
		defer slave.Close()
		if err := sendConsole(o.ConsoleSocket, master, slave.Name()); err != nil {
			syncW.Close()
			return 0, err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	}
	ns, isNew := spec.NetworkNamespace()
	switch {
	case ns != "":
		err = inNetns(ns, cmd.Start)
	case isNew && os.Geteuid() == 0:
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
		err = cmd.Start()
	default:
		if isNew {
			r.log("debug", "not root: the container shares the runtime's network namespace")
		}
		err = cmd.Start()
	}
	syncW.Close()
	if err != nil {
		return 0, goerrors.Errorf("starting the supervisor: %w", err)
	}
	pid := cmd.Process.Pid
	// Not waited for: once create exits, the engine's shim or conmon (a
	// subreaper) is its parent and takes its exit status.
	cmd.Process.Release()
	said := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(syncR, 4096))
		said <- strings.TrimSpace(string(b))
	}()
	select {
	case s := <-said:
		if s != readyLine {
			syscall.Kill(pid, syscall.SIGKILL)
			if s == "" {
				s = "it exited"
			}
			return 0, fmt.Errorf("the supervisor did not start: %s", s)
		}
	case <-time.After(30 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		return 0, errors.New("the supervisor did not start within 30 s")
	}
	return pid, nil
}

// destroy is the end of a container: its QEMU and supervisor killed and
// waited for, its folder removed.
func (r *Runtime) destroy(rec *record) {
	killWait(rec)
	if err := r.Store.remove(rec.ID); err != nil {
		r.log("warn", fmt.Sprintf("removing container %s: %v", rec.ID, err))
	}
}

// killWait kills the container's QEMU and supervisor and waits (10 s at
// most) until both have ended.
func killWait(rec *record) {
	alive := func() bool { return rec.qemuAlive() || rec.supervisorAlive() }
	deadline := time.Now().Add(10 * time.Second)
	for alive() && time.Now().Before(deadline) {
		if rec.qemuAlive() {
			syscall.Kill(rec.QEMU, syscall.SIGKILL)
		}
		if rec.supervisorAlive() {
			syscall.Kill(rec.Supervisor, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Start lets the created container's supervisor boot the image and runs
// the poststart hooks; one failing stops the container.
func (r *Runtime) Start(id string) error {
	unlock, err := r.Store.lock(id)
	if err != nil {
		return err
	}
	rec, err := r.Store.load(id)
	if err != nil {
		unlock()
		return err
	}
	switch st := rec.status(); st {
	case Created:
	case Creating:
		unlock()
		return fmt.Errorf("container %s is still being created", id)
	default:
		unlock()
		return fmt.Errorf("cannot start container %s: it is %s", id, st)
	}
	f, err := os.OpenFile(r.Store.fifo(id), os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err == nil {
		_, err = f.Write([]byte{1})
		f.Close()
	}
	if err != nil {
		unlock()
		return fmt.Errorf("container %s: its supervisor is not waiting for start (%v)", id, err)
	}
	rec.Status = Running
	err = r.Store.save(rec)
	unlock()
	if err != nil {
		return err
	}
	if err := runHooks("poststart", rec.Poststart, rec.state()); err != nil {
		killWait(rec)
		return err
	}
	return nil
}

// State is the container's state.
func (r *Runtime) State(id string) (State, error) {
	rec, err := r.Store.load(id)
	if err != nil {
		return State{}, err
	}
	return rec.state(), nil
}

// Kill sends sig to the container: SIGTERM presses the VM's power button
// (the program gets SIGTERM; a container not started yet ends), SIGKILL
// stops QEMU and the supervisor (the container exits 137); other
// signals are ignored,
// said in the log. all is accepted: a unikernel is one process.
func (r *Runtime) Kill(id string, sig syscall.Signal, all bool) error {
	unlock, err := r.Store.lock(id)
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := r.Store.load(id)
	if err != nil {
		return err
	}
	if rec.status() == Stopped || rec.Supervisor == 0 {
		return fmt.Errorf("container %s: container not running", id)
	}
	switch sig {
	case syscall.SIGKILL:
		// Both at once: QEMU would die with the supervisor (its
		// parent-death signal), and a supervisor that saw its QEMU killed
		// must not take it for a failed start and boot again.
		if rec.qemuAlive() {
			syscall.Kill(rec.QEMU, syscall.SIGKILL)
		}
		return sendSignal(rec.Supervisor, sig)
	case syscall.SIGTERM:
		return sendSignal(rec.Supervisor, sig)
	}
	r.log("debug", fmt.Sprintf("signal %s to container %s ignored: a unikernel takes SIGTERM (the power button) and SIGKILL", unix.SignalName(sig), id))
	return nil
}

func sendSignal(pid int, sig syscall.Signal) error {
	err := syscall.Kill(pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return errors.New("no such process")
	}
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// Delete removes the container: a running one only with force (its VM
// stopped at once), a created one's waiting supervisor ended; then the
// poststop hooks run. With force, an unknown ID is no error.
func (r *Runtime) Delete(id string, force bool) error {
	if err := CheckID(id); err != nil {
		return err
	}
	unlock, err := r.Store.lock(id)
	if err != nil {
		if force {
			if _, serr := os.Stat(r.Store.dir(id)); errors.Is(serr, os.ErrNotExist) {
				return nil
			}
		}
		return err
	}
	defer unlock()
	rec, err := r.Store.load(id)
	if err != nil {
		if force {
			return r.Store.remove(id)
		}
		return err
	}
	if rec.status() == Running && !force {
		return fmt.Errorf("cannot delete container %s: it is running (stop it first, or delete --force)", id)
	}
	killWait(rec)
	if rec.Network.Mode == "tap" && rec.Netns != "" {
		// A VM stopped by SIGKILL leaves its tap and the mirror on the
		// engine's interface: the namespace (a pod's) may outlive the
		// container, and the next VM in it must find it free.
		if _, err := os.Stat(rec.Netns); err == nil {
			if err := inNetns(rec.Netns, func() error { return unmirrorLeftover(rec.Network.Interface) }); err != nil {
				r.log("warn", fmt.Sprintf("container %s: removing its mirror on %s: %v", id, rec.Network.Interface, err))
			}
		}
	}
	if err := r.Store.remove(id); err != nil {
		return err
	}
	st := rec.state()
	st.Status, st.Pid = Stopped, 0
	return runHooks("poststop", rec.Poststop, st)
}

// Ps is the container's processes: its supervisor and QEMU.
func (r *Runtime) Ps(id string) ([]int, error) {
	rec, err := r.Store.load(id)
	if err != nil {
		return nil, err
	}
	pids := []int{}
	if rec.supervisorAlive() {
		pids = append(pids, rec.Supervisor)
	}
	if rec.qemuAlive() {
		pids = append(pids, rec.QEMU)
	}
	return pids, nil
}
