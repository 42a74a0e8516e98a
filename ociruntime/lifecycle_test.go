package ociruntime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/pkgenv"
)

// supervisorEnv makes the test binary a supervisor whose boot is fake:
// "exit3" prints a line and exits 3; "wait" waits for SIGTERM.
const supervisorEnv = "OCIRUNTIME_TEST_SUPERVISOR"

func TestMain(m *testing.M) {
	if mode := os.Getenv(supervisorEnv); mode != "" {
		os.Exit(fakeSupervisor(mode))
	}
	os.Exit(m.Run())
}

// fakeSupervisor is Supervise with a fake boot; os.Args is
// ops-runtime --root ROOT supervise ID.
func fakeSupervisor(mode string) int {
	a := os.Args
	if len(a) != 5 || a[1] != "--root" || a[3] != "supervise" {
		fmt.Fprintf(os.Stderr, "fake supervisor: arguments %q\n", a)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	r := &Runtime{Store: Store{Root: a[2]}}
	return r.Supervise(ctx, SuperviseOptions{ID: a[4], Sync: os.NewFile(3, "sync"), Stdout: os.Stdout, Stderr: os.Stderr,
		Boot: func(ctx context.Context) (int, error) {
			fmt.Println("booted")
			if mode == "wait" {
				<-ctx.Done()
				return 143, nil
			}
			return 3, nil
		}})
}

// bundle makes a bundle whose root filesystem holds an ELF (the test
// binary) as /prog, with the hooks given.
func bundle(t *testing.T, hooks *Hooks, mounts []Mount) string {
	t.Helper()
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	os.MkdirAll(rootfs, 0o755)
	self, _ := os.Executable()
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(rootfs, "prog"), b, 0o755)
	spec := Spec{OCIVersion: "1.0.2", Process: &Process{Args: []string{"prog", "3"}, Env: []string{"PATH=/", "A=b"}, Cwd: "/"},
		Root: &Root{Path: "rootfs"}, Hostname: "h1", Hooks: hooks, Mounts: mounts, Annotations: map[string]string{"k": "v"}}
	j, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, "config.json"), j, 0o644)
	return dir
}

type lifecycle struct {
	t      *testing.T
	r      *Runtime
	out    *os.File // the container's standard output, as a file
	built  []lepton.PlanInput
	logged []string
}

func newLifecycle(t *testing.T) *lifecycle {
	root := filepath.Join(t.TempDir(), "root")
	out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	self, _ := os.Executable()
	l := &lifecycle{t: t, out: out}
	l.r = &Runtime{Store: Store{Root: root}, Self: self, SuperviseArgs: []string{"--root", root, "supervise"},
		Log: func(level, msg string) { l.logged = append(l.logged, level+": "+msg) }}
	return l
}

func (l *lifecycle) create(id, bundle, mode string) error {
	return l.r.Create(CreateOptions{ID: id, Bundle: bundle, PidFile: filepath.Join(bundle, "pid"),
		Home: lepton.Home{Dir: "/nonexistent"}, Stdio: [3]*os.File{nil, l.out, l.out},
		Env: append(os.Environ(), supervisorEnv+"="+mode),
		Build: func(h lepton.Home, in lepton.PlanInput, tg lepton.Target) (Image, error) {
			l.built = append(l.built, in)
			return Image{Path: tg.Output, Guest: "linux"}, nil
		}})
}

func (l *lifecycle) state(id string) State {
	st, err := l.r.State(id)
	if err != nil {
		l.t.Fatal(err)
	}
	return st
}

// waitStopped waits for the container's supervisor to end, reaped by
// this test (its parent, as the engine's subreaper would be), and
// returns its exit code.
func (l *lifecycle) waitStopped(pid int) int {
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		l.t.Fatalf("waiting for the supervisor: %v", err)
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func TestLifecycle(t *testing.T) {
	l := newLifecycle(t)
	hookOut := t.TempDir()
	save := script(t, hookOut, "save", `cat > "$1"`)
	hooks := &Hooks{
		Prestart:      []Hook{{Path: save, Args: []string{"save", filepath.Join(hookOut, "prestart")}}},
		CreateRuntime: []Hook{{Path: save, Args: []string{"save", filepath.Join(hookOut, "createRuntime")}}},
		Poststart:     []Hook{{Path: save, Args: []string{"save", filepath.Join(hookOut, "poststart")}}},
		Poststop:      []Hook{{Path: save, Args: []string{"save", filepath.Join(hookOut, "poststop")}}},
	}
	b := bundle(t, hooks, nil)
	if err := l.create("c1", b, "exit3"); err != nil {
		t.Fatal(err)
	}
	pidText, err := os.ReadFile(filepath.Join(b, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(pidText))
	if err != nil {
		t.Fatalf("pid file %q: not digits only", pidText)
	}
	st := l.state("c1")
	if st.Status != Created || st.Pid != pid || st.Bundle != b || st.Rootfs != filepath.Join(b, "rootfs") || st.Annotations["k"] != "v" {
		t.Fatalf("after create: %+v (pid file %d)", st, pid)
	}
	if err := l.create("c1", b, "exit3"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create: %v", err)
	}
	// The plan: the program found on PATH inside the root filesystem,
	// the process's argv, environment and host name.
	if len(l.built) != 1 {
		t.Fatalf("%d builds", len(l.built))
	}
	in := l.built[0]
	if in.ProgramGuest != "/prog" || strings.Join(in.Argv, " ") != "prog 3" || in.Config.Env["A"] != "b" || in.Config.Hostname != "h1" ||
		!in.NoDeps || len(in.Layers) != 1 || !in.Layers[0].Root {
		t.Fatalf("plan input %+v", in)
	}
	var pre State
	if b, _ := os.ReadFile(filepath.Join(hookOut, "prestart")); json.Unmarshal(b, &pre) != nil || pre.Pid != pid || pre.Status != Creating {
		t.Fatalf("prestart hook read %s", b)
	}
	if _, err := os.Stat(filepath.Join(hookOut, "createRuntime")); err != nil {
		t.Fatal("createRuntime hook did not run")
	}
	// Nothing ran before start.
	if out, _ := os.ReadFile(l.out.Name()); len(out) != 0 {
		t.Fatalf("the container printed %q before start", out)
	}
	if err := l.r.Start("c1"); err != nil {
		t.Fatal(err)
	}
	var post State
	if b, _ := os.ReadFile(filepath.Join(hookOut, "poststart")); json.Unmarshal(b, &post) != nil || post.Status != Running {
		t.Fatalf("poststart hook read %s", b)
	}
	if code := l.waitStopped(pid); code != 3 {
		t.Fatalf("the supervisor exited %d, want the program's 3", code)
	}
	if out, _ := os.ReadFile(l.out.Name()); string(out) != "booted\n" {
		t.Fatalf("the container's output: %q", out)
	}
	st = l.state("c1")
	if st.Status != Stopped || st.Pid != 0 {
		t.Fatalf("after exit: %+v", st)
	}
	if err := l.r.Start("c1"); err == nil || !strings.Contains(err.Error(), "it is stopped") {
		t.Fatalf("start of a stopped container: %v", err)
	}
	if err := l.r.Kill("c1", syscall.SIGTERM, false); err == nil || !strings.Contains(err.Error(), "container not running") {
		t.Fatalf("kill of a stopped container: %v", err)
	}
	if err := l.r.Delete("c1", false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(hookOut, "poststop")); !strings.Contains(string(b), `"stopped"`) {
		t.Fatalf("poststop hook read %s", b)
	}
	if _, err := l.r.State("c1"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("state after delete: %v", err)
	}
	if err := l.r.Delete("c1", true); err != nil {
		t.Fatalf("delete --force of an unknown ID: %v", err)
	}
	if err := l.r.Delete("c1", false); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("delete of an unknown ID: %v", err)
	}
	if ents, _ := os.ReadDir(l.r.Store.Root); len(ents) != 0 {
		t.Fatalf("left in the root: %v", ents)
	}
}

func TestKillAndDelete(t *testing.T) {
	l := newLifecycle(t)
	b := bundle(t, nil, nil)
	// A created container, never started: delete ends its supervisor.
	if err := l.create("created", b, "wait"); err != nil {
		t.Fatal(err)
	}
	st := l.state("created")
	if err := l.r.Delete("created", false); err != nil {
		t.Fatal(err)
	}
	if code := l.waitStopped(st.Pid); code != 137 {
		t.Fatalf("the waiting supervisor ended with %d", code)
	}
	// SIGTERM before start ends it with 143.
	b = bundle(t, nil, nil)
	if err := l.create("term", b, "wait"); err != nil {
		t.Fatal(err)
	}
	st = l.state("term")
	if err := l.r.Kill("term", syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	if code := l.waitStopped(st.Pid); code != 143 {
		t.Fatalf("SIGTERM before start: exit %d", code)
	}
	if err := l.r.Delete("term", false); err != nil {
		t.Fatal(err)
	}
	// A running one: other signals are ignored, delete without --force
	// refuses, SIGTERM reaches the boot, delete --force ends it.
	b = bundle(t, nil, nil)
	if err := l.create("run", b, "wait"); err != nil {
		t.Fatal(err)
	}
	st = l.state("run")
	if err := l.r.Start("run"); err != nil {
		t.Fatal(err)
	}
	if err := l.r.Kill("run", syscall.SIGWINCH, true); err != nil {
		t.Fatal(err)
	}
	if got := l.state("run"); got.Status != Running {
		t.Fatalf("after SIGWINCH: %+v", got)
	}
	if err := l.r.Delete("run", false); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Fatalf("delete of a running container: %v", err)
	}
	pids, err := l.r.Ps("run")
	if err != nil || len(pids) != 1 || pids[0] != st.Pid {
		t.Fatalf("ps: %v %v", pids, err)
	}
	if err := l.r.Kill("run", syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	if code := l.waitStopped(st.Pid); code != 143 {
		t.Fatalf("SIGTERM while running: exit %d", code)
	}
	if got := l.state("run"); got.Status != Stopped {
		t.Fatalf("after SIGTERM: %+v", got)
	}
	b = bundle(t, nil, nil)
	if err := l.create("force", b, "wait"); err != nil {
		t.Fatal(err)
	}
	st = l.state("force")
	if err := l.r.Start("force"); err != nil {
		t.Fatal(err)
	}
	if err := l.r.Delete("force", true); err != nil {
		t.Fatal(err)
	}
	if l.waitStopped(st.Pid) != 137 {
		t.Fatal("delete --force left the supervisor")
	}
}

// TestCreateFails checks that a create that fails leaves nothing: no
// folder, no supervisor.
func TestCreateFails(t *testing.T) {
	l := newLifecycle(t)
	fail := script(t, t.TempDir(), "fail", "echo nope >&2; exit 1")
	tests := []struct {
		name  string
		hooks *Hooks
		mnt   []Mount
		err   string
	}{
		{"prestart hook fails", &Hooks{Prestart: []Hook{{Path: fail}}}, nil, "prestart hook " + fail + ": exit status 1: nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bundle(t, tt.hooks, tt.mnt)
			err := l.create("c", b, "wait")
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if _, err := os.Stat(filepath.Join(l.r.Store.Root, "c")); err == nil {
				t.Fatal("the container's folder is left")
			}
			if _, err := os.Stat(filepath.Join(b, "pid")); err == nil {
				t.Fatal("a pid file was written")
			}
		})
	}
	// Reap the supervisors the failed creates killed.
	for {
		if _, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRootfsInput checks the plan input of a rootfs: PATH from the
// process's environment, scripts skipped, links resolved.
func TestRootfsInput(t *testing.T) {
	root := t.TempDir()
	self, _ := os.Executable()
	b, _ := os.ReadFile(self)
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/server"), b, 0o755)
	os.Symlink("usr/bin", filepath.Join(root, "bin"))
	os.WriteFile(filepath.Join(root, "entry.sh"), []byte("#!/bin/sh\nexec \"$@\"\n"), 0o755)
	in, note, err := pkgenv.RootfsInput(&lepton.Config{}, pkgenv.RootfsProcess{Rootfs: root, Args: []string{"/entry.sh", "server", "-p", "80"},
		Env: []string{"PATH=/bin", "K=v"}, Cwd: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	if in.ProgramGuest != "/usr/bin/server" || strings.Join(in.Argv, " ") != "server -p 80" || in.Config.CwdPath != "/srv" || in.Config.Env["K"] != "v" {
		t.Fatalf("%+v", in)
	}
	if !strings.Contains(note, "skipping /entry.sh") {
		t.Fatalf("note %q", note)
	}
	_, _, err = pkgenv.RootfsInput(&lepton.Config{}, pkgenv.RootfsProcess{Rootfs: root, Args: []string{"/entry.sh"}})
	if err == nil || !strings.HasPrefix(err.Error(), "process.args: ") {
		t.Fatalf("no ELF: %v", err)
	}
}

// TestSupervisorKeepsNoOtherDescriptor checks that the supervisor holds
// create's standard streams and nothing else create was handed.
func TestSupervisorKeepsNoOtherDescriptor(t *testing.T) {
	l := newLifecycle(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	// An engine's pipe handed to create without close-on-exec.
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, pw.Fd(), syscall.F_SETFD, 0); e != 0 {
		t.Fatal(e)
	}
	b := bundle(t, nil, nil)
	if err := l.create("fds", b, "wait"); err != nil {
		t.Fatal(err)
	}
	pid := l.state("fds").Pid
	pw.Close()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(pr); done <- err }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the supervisor holds a pipe create was handed")
	}
	if err := l.r.Delete("fds", true); err != nil {
		t.Fatal(err)
	}
	l.waitStopped(pid)
}
