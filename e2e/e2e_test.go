//go:build e2e

package e2e

// End-to-end tests: they build the ops binary and real guest programs, boot
// real VMs under QEMU and read what the guest printed and its exit code.
// The Linux guest always runs; Nanos tests skip, saying why, when no Nanos
// release is installed.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// env is shared by every end-to-end test in one run: the ops binary, the
// test programs and an ops home (so the Linux guest's kernel is unpacked
// once).
type env struct {
	dir, ops, home string
	progs          map[string]string
	cred           *syscall.Credential // run ops as this user (rootless tests)
}

var (
	envOnce sync.Once
	theEnv  *env
	envErr  error
)

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

func getEnv(t testing.TB) *env {
	t.Helper()
	envOnce.Do(func() { theEnv, envErr = newEnv() })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return theEnv
}

func run(dir string, name string, args ...string) error {
	c := exec.Command(name, args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

const helloC = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	printf("hello from C, %d args\n", argc);
	if (argc > 2 && strcmp(argv[1], "sleep") == 0) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		usleep(atoi(argv[2]) * 1000);
		clock_gettime(CLOCK_MONOTONIC, &b);
		printf("slept %ld ms\n", (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000);
		return 0;
	}
	if (argc > 2 && strcmp(argv[1], "cat") == 0) {
		FILE *f = fopen(argv[2], "r");
		char line[256];
		if (!f) {
			perror(argv[2]);
			return 1;
		}
		while (fgets(line, sizeof line, f))
			printf("read: %s", line);
		return 0;
	}
	if (argc > 3 && strcmp(argv[1], "append") == 0) {
		FILE *f = fopen(argv[2], "a");
		if (!f || fprintf(f, "%s\n", argv[3]) < 0 || fclose(f) != 0) {
			perror(argv[2]);
			return 1;
		}
		f = fopen(argv[2], "r");
		char line[256];
		while (f && fgets(line, sizeof line, f))
			printf("read: %s", line);
		return 0;
	}
	return argc > 1 ? atoi(argv[1]) : 0;
}
`

const serverGo = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	port := "8080"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Hostname", host) // which replica answered
		fmt.Fprintf(w, "hello over http on %s\n", port)
	})
	fmt.Println("listening on", port)
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
}
`

func newEnv() (*env, error) {
	dir, err := os.MkdirTemp("", "ops-e2e-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, ops: filepath.Join(dir, "ops"), home: filepath.Join(dir, "home"), progs: map[string]string{}}
	root := repoRoot()
	if _, err := os.Stat(filepath.Join(root, "guestinit", "bin", "init-amd64")); err != nil {
		return nil, fmt.Errorf("the Linux guest's init is not built; run the tests with 'make test'")
	}
	// Built as the Makefile builds it (static, no symbol tables), so that
	// the benchmarks time what users run.
	if err := run(root, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", e.ops, "."); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.c"), []byte(helloC), 0o644); err != nil {
		return nil, err
	}
	if err := run(dir, "gcc", "-O2", "-static", "-o", "hello_static", "hello.c"); err != nil {
		return nil, fmt.Errorf("building a static C program (needs gcc and libc6-dev: 'make test-deps'): %w", err)
	}
	if err := run(dir, "gcc", "-O2", "-o", "hello_dynamic", "hello.c"); err != nil {
		return nil, err
	}
	srv := filepath.Join(dir, "server")
	if err := os.MkdirAll(srv, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(srv, "main.go"), []byte(serverGo), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(srv, "go.mod"), []byte("module server\n\ngo 1.22\n"), 0o644); err != nil {
		return nil, err
	}
	if err := run(srv, "go", "build", "-o", filepath.Join(dir, "goserver"), "."); err != nil {
		return nil, err
	}
	for _, p := range []string{"hello_static", "hello_dynamic", "goserver"} {
		e.progs[p] = filepath.Join(dir, p)
	}
	return e, nil
}

// nanosSource is the ops home whose Nanos release the tests use:
// $OPS_TEST_NANOS_HOME, else ~/.ops.
func nanosSource() string {
	if src := os.Getenv("OPS_TEST_NANOS_HOME"); src != "" {
		return src
	}
	h, _ := os.UserHomeDir()
	return filepath.Join(h, ".ops")
}

// nanosHome links an installed Nanos release into a fresh ops home, or
// skips the test saying why.
func nanosHome(t *testing.T) string {
	t.Helper()
	src := nanosSource()
	v, err := os.ReadFile(filepath.Join(src, "latest.txt"))
	ver := strings.TrimSpace(string(v))
	if err != nil || ver == "" {
		t.Skipf("SKIP: no Nanos release installed in %s (install one with 'ops update', or set OPS_TEST_NANOS_HOME)", src)
	}
	if _, err := os.Stat(filepath.Join(src, ver, "kernel.img")); err != nil {
		t.Skipf("SKIP: Nanos %s named in %s/latest.txt is not installed", ver, src)
	}
	home := t.TempDir()
	if err := os.Symlink(filepath.Join(src, ver), filepath.Join(home, ver)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "latest.txt"), []byte(ver+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return home
}

// writableHome gives a Nanos test home (links to a release) a fresh
// folder of its own, so a test can add packages beside the release.
func writableHome(t *testing.T, home string) string {
	t.Helper()
	h := t.TempDir()
	ents, _ := os.ReadDir(home)
	for _, en := range ents {
		os.Symlink(filepath.Join(home, en.Name()), filepath.Join(h, en.Name()))
	}
	return h
}

type result struct {
	stdout, stderr string
	code           int
}

// opsHomeEnv is the OPS_HOME that makes home the ops home: OPS_HOME names
// the folder holding .ops, so a home not named .ops gets a sibling folder
// whose .ops links to it.
func opsHomeEnv(home string) string {
	if filepath.Base(home) == ".ops" {
		return "OPS_HOME=" + filepath.Dir(home)
	}
	parent := home + ".opshome"
	os.MkdirAll(home, 0o755) // a link to a missing folder would stop ops making it
	os.MkdirAll(parent, 0o755)
	os.Symlink(home, filepath.Join(parent, ".ops"))
	return "OPS_HOME=" + parent
}

// ops runs the ops binary with an ops home and waits at most timeout.
func (e *env) opsCmd(ctx context.Context, home string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, e.ops, args...)
	c.Dir = e.dir
	c.Env = append(os.Environ(), opsHomeEnv(home))
	if e.cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
	}
	return c
}

func (e *env) run(t *testing.T, home string, args ...string) result {
	t.Helper()
	return e.runWith(t, home, nil, args...)
}

// runWith runs ops with extra environment variables, for at most three
// minutes.
func (e *env) runWith(t *testing.T, home string, extra []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := e.opsCmd(ctx, home, args...)
	c.Env = append(c.Env, extra...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ops %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errb.String(), code}
}

func forEachGuest(t *testing.T, f func(t *testing.T, guest, home string)) {
	e := getEnv(t)
	for _, g := range []string{"linux", "nanos"} {
		t.Run(g, func(t *testing.T) {
			home := e.home
			if g == "nanos" {
				home = nanosHome(t)
			}
			f(t, g, home)
		})
	}
}

func TestE2EHello(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		for _, prog := range []string{"hello_static", "hello_dynamic"} {
			r := e.run(t, home, "run", "--guest", guest, "./"+prog)
			if r.code != 0 || !strings.Contains(r.stdout, "hello from C, 1 args\n") {
				t.Fatalf("%s: exit %d\nstdout: %q\nstderr: %s", prog, r.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stdout, "\r") {
				t.Fatalf("%s: the console translated newlines: %q", prog, r.stdout)
			}
		}
	})
}

func TestE2EExitCode(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		r := e.run(t, home, "run", "--guest", guest, "./hello_static", "-a", "3")
		if r.code != 3 || !strings.Contains(r.stdout, "hello from C, 2 args") {
			t.Fatalf("exit %d, want 3\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		// Above 127, the exit device carries 7 bits: Nanos's exit record
		// and the Linux guest's channel (a guest started from its
		// snapshot) give the rest; a Linux guest booted cold has no
		// channel, and gives the low 7 bits.
		for _, code := range []int{200, 255} {
			want := code
			if guest == "linux" && os.Getenv("OPS_NO_SNAPSHOT") == "1" {
				want = code & 0x7f
			}
			if r := e.run(t, home, "run", "--guest", guest, "./hello_static", "-a", strconv.Itoa(code)); r.code != want {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, want, r.stdout, r.stderr)
			}
		}
	})
}

// TestE2ESleep checks that the guest's timers fire when it is idle: a
// program that sleeps wakes up on time.
func TestE2ESleep(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		r := e.run(t, home, "run", "--guest", guest, "./hello_static", "-a", "sleep", "-a", "300")
		ms := -1
		if i := strings.Index(r.stdout, "slept"); i >= 0 {
			fmt.Sscanf(r.stdout[i:], "slept %d ms", &ms)
		}
		if r.code != 0 || ms < 300 || ms > 3000 {
			t.Fatalf("exit %d, slept %d ms (want 300 to 3000)\nstdout: %s\nstderr: %s", r.code, ms, r.stdout, r.stderr)
		}
	})
}

// freePorts finds n consecutive free TCP ports on 127.0.0.1.
func freePorts(t testing.TB, n int) int {
	t.Helper()
	for base := 20000 + os.Getpid()%10000; base < 60000; base += n + 7 {
		ok := true
		var ls []net.Listener
		for i := 0; i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

// getUntil polls url until it answers 200 or the deadline passes.
func getUntil(url string, deadline time.Time) (string, error) {
	var last error
	for time.Now().Before(deadline) {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(b), nil
			}
			last = fmt.Errorf("HTTP %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", last
}

// startServer boots the Go server in the background and returns a stop
// function that interrupts ops like Ctrl-C and reports how it ended.
func startServer(t *testing.T, e *env, home string, args ...string) (stop func() (int, string)) {
	t.Helper()
	c := e.opsCmd(context.Background(), home, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	stopped := false
	stop = func() (int, string) {
		if !stopped {
			stopped = true
			c.Process.Signal(syscall.SIGINT)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				c.Process.Kill()
				<-done
				t.Errorf("ops did not stop within 10 s of SIGINT")
			}
		}
		return c.ProcessState.ExitCode(), out.String() + errb.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestE2EHTTPServerPorts(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		base := freePorts(t, 3)
		// A range: three host ports, each forwarded to the same guest port;
		// the server listens on the middle one.
		spec := fmt.Sprintf("%d-%d", base, base+2)
		stop := startServer(t, e, home, "run", "--guest", guest, "./goserver", "-a", fmt.Sprint(base+1), "-p", spec)
		body, err := getUntil(fmt.Sprintf("http://127.0.0.1:%d/", base+1), time.Now().Add(90*time.Second))
		if err != nil {
			code, out := stop()
			t.Fatalf("no HTTP answer through -p %s: %v (ops exit %d)\n%s", spec, err, code, out)
		}
		if !strings.Contains(body, fmt.Sprintf("hello over http on %d", base+1)) {
			t.Fatalf("body %q", body)
		}
		code, out := stop()
		if code != 130 {
			t.Fatalf("ops exit %d after SIGINT, want 130\n%s", code, out)
		}
	})
}

func TestE2EMappedPort(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		host := freePorts(t, 1)
		stop := startServer(t, e, home, "run", "--guest", guest, "./goserver", "-p", fmt.Sprintf("%d:8080", host))
		if _, err := getUntil(fmt.Sprintf("http://127.0.0.1:%d/", host), time.Now().Add(90*time.Second)); err != nil {
			code, out := stop()
			t.Fatalf("no answer on host port %d -> guest 8080: %v (exit %d)\n%s", host, err, code, out)
		}
	})
}

// qemuChildren lists QEMU processes whose parent is pid.
func qemuChildren(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "qemu-system") {
			continue
		}
		var ppid, qpid int
		var state string
		fmt.Sscanf(s[i+2:], "%s %d", &state, &ppid)
		fmt.Sscanf(d.Name(), "%d", &qpid)
		if ppid == pid {
			out = append(out, qpid)
		}
	}
	return out
}

func TestE2ECtrlCLeavesNoQEMU(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		host := freePorts(t, 1)
		c := e.opsCmd(context.Background(), home, "run", "--guest", guest, "./goserver", "-p", fmt.Sprintf("%d:8080", host))
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := getUntil(fmt.Sprintf("http://127.0.0.1:%d/", host), time.Now().Add(90*time.Second)); err != nil {
			c.Process.Kill()
			c.Wait()
			t.Fatalf("server did not come up: %v\n%s", err, out.String())
		}
		kids := qemuChildren(c.Process.Pid)
		if len(kids) != 1 {
			t.Fatalf("found QEMU children %v of ops %d", kids, c.Process.Pid)
		}
		start := time.Now()
		c.Process.Signal(syscall.SIGINT)
		err := c.Wait()
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("ops took %v to stop after SIGINT", took)
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
			t.Errorf("ops ended with %v after SIGINT, want exit 130", err)
		}
		for i := 0; i < 20 && processAlive(kids[0]); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if processAlive(kids[0]) {
			t.Fatalf("QEMU %d is still running after ops stopped", kids[0])
		}
	})
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestE2ENanosQ35FullDisk(t *testing.T) {
	e := getEnv(t)
	home := nanosHome(t)
	r := e.run(t, home, "run", "--guest", "nanos", "--machine", "q35", "./hello_static", "-a", "3")
	if r.code != 3 || !strings.Contains(r.stdout, "hello from C, 2 args") {
		t.Fatalf("q35 BIOS boot: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// TestE2EBuildReproducible builds the same inputs twice, on one CPU and
// on four (a Nanos image's UUIDs are hashed on every CPU): the same bytes.
func TestE2EBuildReproducible(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		var sums [2][]byte
		for i, procs := range []string{"GOMAXPROCS=1", "GOMAXPROCS=4"} {
			out := filepath.Join(t.TempDir(), "img")
			r := e.runWith(t, home, []string{procs}, "build", "--guest", guest, "./hello_dynamic", "-o", out, "-e", "A=B")
			if r.code != 0 {
				t.Fatalf("build: %d %s", r.code, r.stderr)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			sums[i] = b
		}
		if !bytes.Equal(sums[0], sums[1]) {
			t.Fatal("two builds of the same inputs differ")
		}
	})
}

func TestE2ECrashAndMissingProgram(t *testing.T) {
	e := getEnv(t)
	crash := filepath.Join(e.dir, "crash")
	if _, err := os.Stat(crash); err != nil {
		os.WriteFile(crash+".c", []byte("#include <stdio.h>\nint main(void){puts(\"about to crash\");fflush(stdout);*(volatile int*)0=1;return 0;}\n"), 0o644)
		if err := run(e.dir, "gcc", "-static", "-o", "crash", "crash.c"); err != nil {
			t.Fatal(err)
		}
	}
	forEachGuest(t, func(t *testing.T, guest, home string) {
		r := e.run(t, home, "run", "--guest", guest, "./crash")
		if r.code != 11 || !strings.Contains(r.stdout, "about to crash") {
			t.Fatalf("crash: exit %d, want 11 (SIGSEGV)\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
	r := e.run(t, e.home, "run", "--guest", "linux", "./no-such-program")
	if r.code == 0 || !strings.Contains(r.stderr, "no-such-program") {
		t.Fatalf("missing program: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestE2EGuestNanosWithoutRelease(t *testing.T) {
	e := getEnv(t)
	r := e.run(t, t.TempDir(), "run", "--guest", "nanos", "./hello_static")
	if r.code == 0 || !strings.Contains(r.stderr, "ops update") {
		t.Fatalf("--guest nanos without a release: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestE2EDefaultGuestNote(t *testing.T) {
	e := getEnv(t)
	r := e.run(t, e.home, "run", "./hello_static")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "guest: linux") || !strings.Contains(r.stderr, "no Nanos release installed") {
		t.Fatalf("missing the one-line guest note in stderr: %q", r.stderr)
	}
}

// busyPort is a port on 127.0.0.1 that something listens on until the
// test ends.
func busyPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func TestE2EPortInUse(t *testing.T) {
	e := getEnv(t)
	port := busyPort(t)
	r := e.run(t, e.home, "run", "--guest", "linux", "./goserver", "-p", fmt.Sprint(port))
	if r.code == 0 || !strings.Contains(r.stderr, fmt.Sprint(port)) || !strings.Contains(r.stderr, "in use") {
		t.Fatalf("port in use: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	src := nanosSource()
	if _, err := os.Stat(filepath.Join(src, "latest.txt")); err != nil {
		fmt.Fprintf(os.Stderr, "SKIP: Nanos end-to-end tests: no Nanos release installed in %s (ops update, or OPS_TEST_NANOS_HOME); the Linux guest tests run\n", src)
	}
	code := m.Run()
	if theEnv != nil {
		os.RemoveAll(theEnv.dir)
	}
	os.Exit(code)
}
