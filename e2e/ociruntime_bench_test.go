//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/opsdev/ops/elfdeps"
	"golang.org/x/sys/unix"
)

// BenchmarkOCIRuntimeDocker measures, side by side in one run, whole
// processes start -> exit of the same static hello (exit code 3): docker
// run --rm --runtime ops of its image, docker run --rm of the same image
// with runc (Docker's default runtime), and ops run of the same program
// (the Linux guest both restored from its snapshot, as ops run does by
// default, and booted cold, as the runtime boots it: a container's image
// is its own), and docker run --runtime ops of the image's first
// container, which writes the base its containers share (the others find
// it kept). Docker's daemon runs in a network namespace of the test's
// own, and docker's commands are started inside it with nsenter (a few
// ms); containers are on Docker's default bridge, ops run on its own
// user-mode network (passt), started on the host as users do. The order of the commands rotates from one round to the next.
// Medians in ms, of OCIRUNS rounds in make bench (15 by default).
func BenchmarkOCIRuntimeDocker(b *testing.B) {
	e := getEnv(b)
	dockerBench(b, e, "hello-exit", "ops-e2e-hello:1", e.progs["hello_static"], `["/hello_static","3"]`, func(b *testing.B, guest, home string, docker func(...string) *exec.Cmd, d *docker) {
		opsRun := func(args ...string) *exec.Cmd {
			return e.opsCmd(context.Background(), home, append([]string{"run", "--guest", guest}, args...)...)
		}
		cases := []benchCase{
			{"docker-ops", func() *exec.Cmd { return docker("run", "--rm", "--runtime", "ops", "ops-e2e-hello:1") }},
			{"docker-runc", func() *exec.Cmd { return docker("run", "--rm", "ops-e2e-hello:1") }},
			{"ops-run", func() *exec.Cmd { return opsRun("./hello_static", "-a", "3") }},
		}
		if guest == "linux" {
			cases = append(cases, benchCase{"ops-run-cold", func() *exec.Cmd { return opsRun("--no-snapshot", "./hello_static", "-a", "3") }})
		}
		// The first container of the image: its base written first (the
		// others find the one kept in the runtime's root).
		cases = append(cases, benchCase{"docker-ops-new-base", func() *exec.Cmd {
			if err := os.RemoveAll(filepath.Join(d.runtimeRoot(), "@bases")); err != nil {
				b.Fatal(err)
			}
			return docker("run", "--rm", "--runtime", "ops", "ops-e2e-hello:1")
		}})
		benchExit3(b, cases, "hello from C, 2 args")
	})
}

// BenchmarkOCIRuntimeDockerHTTP measures, side by side in one run, start
// -> first HTTP 200 of the same Go server (built static, so runc can run
// its image too): docker run -d --runtime ops -p of its image, docker run
// -d -p of the same image with runc, and ops run -p of the program. The
// containers' published port is asked from inside the daemon's network
// namespace (where it is published), ops run's on the host, both polled
// every millisecond; each run is removed (docker rm -f, or the
// interrupt) outside the timer. Medians in ms of OCIRUNS rounds.
func BenchmarkOCIRuntimeDockerHTTP(b *testing.B) {
	e := getEnv(b)
	dir := b.TempDir()
	server := filepath.Join(dir, "goserver")
	build := exec.Command("go", "build", "-o", server, ".")
	build.Dir = filepath.Join(e.dir, "server")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the static server: %v\n%s", err, out)
	}
	dockerBench(b, e, "http-first-200", "ops-e2e-web:1", server, `["/goserver","8080"]`, func(b *testing.B, guest, home string, docker func(...string) *exec.Cmd, d *docker) {
		ports := freePorts(b, 2)
		inNS := nsPoller(b, d.ns)
		seq := 0
		dockerRun := func(runtime ...string) func() time.Duration {
			return func() time.Duration {
				seq++
				name := fmt.Sprintf("web%d", seq)
				args := append(append([]string{"run", "-d", "--name", name}, runtime...), "-p", fmt.Sprintf("127.0.0.1:%d:8080", ports), "ops-e2e-web:1")
				t0 := time.Now()
				if out, err := docker(args...).CombinedOutput(); err != nil {
					b.Fatalf("docker %v: %v\n%s", args, err, out)
				}
				inNS(fmt.Sprintf("127.0.0.1:%d", ports))
				took := time.Since(t0)
				docker("rm", "-f", name).Run()
				return took
			}
		}
		opsRun := func() time.Duration {
			c := e.opsCmd(context.Background(), home, "run", "--guest", guest, server, "-a", "8080", "-p", fmt.Sprintf("%d:8080", ports+1))
			t0 := time.Now()
			firstOK(b, c, fmt.Sprintf("http://127.0.0.1:%d/", ports+1))
			return time.Since(t0)
		}
		cases := []struct {
			name string
			run  func() time.Duration
		}{
			{"docker-ops", dockerRun("--runtime", "ops")},
			{"docker-runc", dockerRun()},
			{"ops-run", opsRun},
		}
		for _, c := range cases { // images built, caches warm
			c.run()
		}
		times := map[string][]time.Duration{}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for j := range cases {
				c := cases[(i+j)%len(cases)]
				times[c.name] = append(times[c.name], c.run())
			}
		}
		b.StopTimer()
		for _, c := range cases {
			b.ReportMetric(median(times[c.name]), c.name+"-median-ms")
		}
	})
}

// dockerBench runs bench on each guest (GUEST/name) with a Docker daemon
// whose image holds prog, started as cmd, and docker's commands run in
// its namespace (nsCommand).
func dockerBench(b *testing.B, e *env, name, image, prog, cmd string, bench func(b *testing.B, guest, home string, docker func(...string) *exec.Cmd, d *docker)) {
	homes := map[string]string{"linux": e.home, "nanos": nanosHomeB(b)}
	for _, guest := range []string{"nanos", "linux"} {
		b.Run(guest+"/"+name, func(b *testing.B) {
			home := homes[guest]
			if home == "" {
				b.Skip("SKIP: no Nanos release installed")
			}
			d := newDocker(b, e, guest, home)
			d.importProgram(image, prog, cmd)
			time.Sleep(2100 * time.Millisecond) // the layer's times old enough to key its base (Nanos)
			bench(b, guest, home, d.nsCommand(b), d)
		})
	}
}

// nsCommand returns what makes a docker command run inside the daemon's
// network namespace, entered with nsenter (a few ms), as a whole process
// to time.
func (d *docker) nsCommand(b *testing.B) func(args ...string) *exec.Cmd {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		b.Skip("SKIP: no nsenter")
	}
	return func(args ...string) *exec.Cmd {
		return exec.Command(nsenter, append([]string{"--net=/run/netns/" + d.ns, d.client, "-H", "unix://" + d.sock}, args...)...)
	}
}

// nsPoller returns a function that waits (60 s at most) for an HTTP 200
// from addr inside the network namespace ns, asking every millisecond
// from a thread that entered it.
func nsPoller(b *testing.B, ns string) func(addr string) {
	type req struct {
		addr string
		done chan error
	}
	reqs := make(chan req)
	b.Cleanup(func() { close(reqs) })
	ready := make(chan error)
	go func() {
		// This thread enters the namespace and is never handed back: it
		// ends with the goroutine.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		ready <- err
		if err != nil {
			return
		}
		for r := range reqs {
			deadline := time.Now().Add(60 * time.Second)
			for {
				if get200(r.addr) {
					r.done <- nil
					break
				}
				if time.Now().After(deadline) {
					r.done <- fmt.Errorf("no HTTP 200 from %s in %s", r.addr, ns)
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
	}()
	if err := <-ready; err != nil {
		b.Fatalf("entering %s: %v", ns, err)
	}
	return func(addr string) {
		r := req{addr, make(chan error)}
		reqs <- r
		if err := <-r.done; err != nil {
			b.Fatal(err)
		}
	}
}

// get200 reports whether a GET / on addr answers 200, on the calling
// thread's network (net.Dial makes its socket on the calling goroutine).
func get200(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "HTTP/1.") && strings.Contains(line, " 200 ")
}

// BenchmarkOCIRuntimeDockerPython measures, side by side in one run,
// start -> exit of python3 with its standard library as a Docker image
// (the host's python3, the libraries its ELF names and /usr/lib/python3.N:
// about 1,400 files, 55 MB) on Nanos: docker run --rm --runtime ops when
// the image's base is kept in the runtime's root (a second container of
// the image: its image is only its own part), the same with the base
// removed first (a first container: the base is written), and docker run
// --rm with runc. Medians in ms of OCIRUNS rounds.
func BenchmarkOCIRuntimeDockerPython(b *testing.B) {
	e := getEnv(b)
	home := nanosHomeB(b)
	if home == "" {
		b.Skip("SKIP: no Nanos release installed")
	}
	prog, lib := pythonTree()
	if prog == "" {
		b.Skip("SKIP: no python3 with its standard library in /usr/lib")
	}
	d := newDocker(b, e, "nanos", home)
	real, err := filepath.EvalSymlinks(prog)
	if err != nil {
		b.Fatal(err)
	}
	deps, err := elfdeps.NewResolver("/").Resolve(real, real)
	if err != nil {
		b.Fatal(err)
	}
	var ents []tarEnt
	add := func(guest, host string, mode int64) {
		body, err := os.ReadFile(host)
		if err != nil {
			b.Fatal(err)
		}
		ents = append(ents, tarEnt{name: strings.TrimPrefix(guest, "/"), body: body, mode: mode})
	}
	add(prog, real, 0o755)
	for _, f := range append([]elfdeps.Dep{*deps.Interp}, deps.Libs...) {
		add(f.Guest, f.Host, 0o755)
	}
	err = filepath.WalkDir(lib, func(p string, de fs.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			add(p, p, 0o644)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	tarball := tarFile(b, filepath.Join(d.dir, "python.tar"), ents)
	cmd := `["` + prog + `","-c","raise SystemExit(3)"]`
	if out, code := d.docker("import", "--change", "CMD "+cmd, tarball, "ops-e2e-python:1"); code != 0 {
		b.Fatalf("docker import: exit %d\n%s", code, out)
	}
	time.Sleep(2100 * time.Millisecond) // the layer's times old enough to key its base
	docker := d.nsCommand(b)
	run := func(args ...string) func() *exec.Cmd {
		return func() *exec.Cmd {
			return docker(append(append([]string{"run", "--rm"}, args...), "ops-e2e-python:1")...)
		}
	}
	cases := []benchCase{
		{"docker-ops", run("--runtime", "ops")},
		{"docker-ops-new-base", func() *exec.Cmd {
			if err := os.RemoveAll(filepath.Join(d.runtimeRoot(), "@bases")); err != nil {
				b.Fatal(err)
			}
			return run("--runtime", "ops")()
		}},
		{"docker-runc", run()},
	}
	benchExit3(b, cases, "")
}

// benchCase is one command a benchmark times, made anew for each run.
type benchCase struct {
	name string
	cmd  func() *exec.Cmd
}

// benchExit3 runs each case once (caches warm), then b.N rounds of all of
// them, the order rotating each round, each a whole process that must
// exit 3 with want in its output, and reports each one's median in ms.
func benchExit3(b *testing.B, cases []benchCase, want string) {
	once := func(c *exec.Cmd) time.Duration {
		t0 := time.Now()
		out, err := c.CombinedOutput()
		took := time.Since(t0)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), want) {
			b.Fatalf("%v: %v, want exit 3\n%s", c.Args, err, out)
		}
		return took
	}
	for _, c := range cases {
		once(c.cmd())
	}
	times := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range cases {
			c := cases[(i+j)%len(cases)]
			times[c.name] = append(times[c.name], once(c.cmd()))
		}
	}
	b.StopTimer()
	for _, c := range cases {
		b.ReportMetric(median(times[c.name]), c.name+"-median-ms")
	}
}
