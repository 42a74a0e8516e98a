//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// podman is Debian's podman with ops as its OCI runtime, its storage in
// the engine test's folder and run inside its network namespace (entered
// with nsenter: `ip netns exec` remounts /sys, which hides the cgroup
// hierarchies podman needs), so the addresses its bridge hands out stay
// there.
type podman struct {
	*engineEnv
	state             string // the runtime's state folder (ops-runtime.json's root)
	rootArgs, runArgs []string
}

const podmanImage = "localhost/ops-e2e-hello:1"

// newPodman readies podman for a test with the ops home given (guest
// "nanos" or "linux"), or skips saying why it cannot run.
func newPodman(t *testing.T, e *env, guest, home string) *podman {
	t.Helper()
	x := newEngineEnv(t, e, guest, home, "podman", "conmon")
	p := &podman{engineEnv: x, state: filepath.Join(x.dir, "state")}
	p.rootArgs = []string{"--root", filepath.Join(x.dir, "storage"), "--runroot", filepath.Join(x.dir, "run"), "--tmpdir", filepath.Join(x.dir, "tmp"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", x.link}
	// Within the host's limits (podman's defaults are not, on this machine).
	p.runArgs = []string{"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"}
	// Registered after the folder's removal, so it runs before it.
	t.Cleanup(func() {
		p.run("rm", "-a", "-f")
		p.run("rmi", "-a", "-f")
	})
	// The image: the static hello at /hello, CMD ["/hello","3"], made here.
	p.importAs(podmanImage, "hello", e.progs["hello_static"], `["/hello","3"]`)
	return p
}

// run runs podman in the namespace (3 minutes at most) and returns its
// output, standard error included, and exit code.
func (p *podman) run(args ...string) (string, int) {
	p.t.Helper()
	return p.engineEnv.run("podman", append(append([]string(nil), p.rootArgs...), args...)...)
}

// pids is the container's processes as ops-runtime ps reports them: its
// supervisor and QEMU.
func (p *podman) pids(name string) []int {
	p.t.Helper()
	id, code := p.run("inspect", "--format", "{{.ID}}", name)
	if code != 0 {
		p.t.Fatalf("podman inspect %s: %s", name, id)
	}
	return runtimePids(p.t, p.link, "ps", "--format", "json", strings.TrimSpace(id))
}

// checkGone fails the test if any of pids still runs, or the runtime's
// state folder holds anything.
func (p *podman) checkGone(pids []int) {
	p.t.Helper()
	waitGone(p.t, 10*time.Second, pids, p.state)
}

// runtimePids is a container's processes as ops-runtime ps (args after
// the link) reports them: its supervisor and QEMU.
func runtimePids(t testing.TB, link string, args ...string) []int {
	t.Helper()
	out, err := exec.Command(link, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ops-runtime ps: %v %s", err, out)
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		t.Fatalf("ops-runtime ps: %q", out)
	}
	return pids
}

// waitGone fails the test if, within the time given, any of pids still
// runs or any of the runtime's state folders (roots) holds anything.
func waitGone(t testing.TB, within time.Duration, pids []int, roots ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var left []string
		for _, pid := range pids {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
				left = append(left, fmt.Sprintf("pid %d", pid))
			}
		}
		for _, root := range roots {
			ents, _ := os.ReadDir(root)
			for _, e := range ents {
				if e.Name() == "@bases" {
					continue // the Nanos images' shared bases: a cache (checkBases)
				}
				left = append(left, filepath.Join(root, e.Name()))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tarFile writes a layer tarball holding ents to path, for an engine's
// import.
func tarFile(t testing.TB, path string, ents []tarEnt) string {
	t.Helper()
	rc, err := layer(t, ents).Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// programTar writes a tarball holding prog at /name, into dir.
func programTar(t testing.TB, dir, name, prog string) string {
	t.Helper()
	b, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	return tarFile(t, filepath.Join(dir, name+".tar"), []tarEnt{{name: name, body: b, mode: 0o755}})
}

// nsGetHTTP waits (90 s at most) for the Go server's answer on addr,
// asked from inside the network namespace ns.
func nsGetHTTP(t testing.TB, e *env, ns, addr string, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		body, err := nsHTTP(e, ns, addr, "GET", "", "")
		if err == nil && strings.Contains(body, "hello over http on 8080") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer on %s: %v %q\nlogs:\n%s", addr, err, body, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLogs waits until the container's output holds want.
func (p *podman) waitLogs(name, want string) {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _ := p.run("logs", name)
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s never printed %q; its output:\n%s", name, want, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestE2EOCIRuntimePodman runs a hello image with podman run --rm, ops
// as the runtime, with no network and with podman's own: its output and
// exit code come through, and nothing is left.
func TestE2EOCIRuntimePodman(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		p := newPodman(t, e, guest, home)
		for _, network := range []string{"none", "podman's bridge"} {
			args := append([]string{"run", "--rm"}, p.runArgs...)
			if network == "none" {
				args = append(args, "--network", "none")
			}
			start := time.Now()
			out, code := p.run(append(args, podmanImage)...)
			took := time.Since(start)
			if code != 3 || !strings.Contains(out, "hello from C, 2 args\n") {
				t.Fatalf("network %s: exit %d, want 3\n%s", network, code, out)
			}
			t.Logf("%s guest, network %s: podman run --rm exited 3 after %v", guest, network, took.Round(time.Millisecond))
			p.checkGone(nil)
		}
	})
}

// TestE2EOCIRuntimePodmanStop runs the hello in the background: podman
// exec is one error line, podman stop presses the power button (exit
// 143), and podman rm -f of a running one leaves no supervisor, QEMU or
// state.
func TestE2EOCIRuntimePodmanStop(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		p := newPodman(t, e, guest, home)
		detached := func(name string) []int {
			args := append(append([]string{"run", "-d", "--name", name}, p.runArgs...), podmanImage, "/hello", "sleep", "600000")
			if out, code := p.run(args...); code != 0 {
				t.Fatalf("podman run -d: exit %d\n%s", code, out)
			}
			p.waitLogs(name, "hello from C, 3 args")
			pids := p.pids(name)
			if len(pids) != 2 {
				t.Fatalf("ops-runtime ps of a running container: %v, want the supervisor and QEMU", pids)
			}
			return pids
		}
		pids := detached("stopped")
		out, code := p.run("exec", "stopped", "/hello")
		if code == 0 || !strings.Contains(out, "a unikernel runs one program: exec is not supported") {
			t.Fatalf("podman exec: exit %d\n%s", code, out)
		}
		start := time.Now()
		if out, code := p.run("stop", "stopped"); code != 0 {
			t.Fatalf("podman stop: exit %d\n%s", code, out)
		}
		t.Logf("%s guest: podman stop took %v", guest, time.Since(start).Round(time.Millisecond))
		if out, _ := p.run("inspect", "--format", "{{.State.ExitCode}}", "stopped"); strings.TrimSpace(out) != "143" {
			t.Fatalf("exit code after podman stop: %s, want 143 (SIGTERM)", out)
		}
		if out, code := p.run("rm", "stopped"); code != 0 {
			t.Fatalf("podman rm: exit %d\n%s", code, out)
		}
		p.checkGone(pids)

		pids = detached("removed")
		start = time.Now()
		if out, code := p.run("rm", "-f", "removed"); code != 0 {
			t.Fatalf("podman rm -f: exit %d\n%s", code, out)
		}
		t.Logf("%s guest: podman rm -f of a running container took %v", guest, time.Since(start).Round(time.Millisecond))
		p.checkGone(pids)
	})
}

// TestE2EOCIRuntimePodmanBadInput checks that what a unikernel cannot do
// is one line in podman's own error output, and leaves nothing.
func TestE2EOCIRuntimePodmanBadInput(t *testing.T) {
	e := getEnv(t)
	p := newPodman(t, e, "linux", e.home)
	out, code := p.run(append(append([]string{"run", "--rm", "--network", "none"}, p.runArgs...), podmanImage, "/nothing")...)
	if code == 0 || !strings.Contains(out, "name no ELF program") {
		t.Fatalf("a missing program: exit %d\n%s", code, out)
	}
	p.checkGone(nil)
	// A writable mount the guest cannot share: neither a folder (shared)
	// nor a regular file (copied in and given back).
	out, code = p.run(append(append([]string{"run", "--rm", "--network", "none", "-v", "/dev/null:/data/null"}, p.runArgs...), podmanImage)...)
	if code == 0 || !strings.Contains(out, "mount /dev/null on /data/null: a unikernel shares folders and copies files; this is neither") {
		t.Fatalf("a writable mount of a device: exit %d\n%s", code, out)
	}
	p.checkGone(nil)
}

// importProgram makes an image holding prog at /NAME, with cmd.
func (p *podman) importProgram(image, prog string, cmd string) {
	p.t.Helper()
	p.importAs(image, filepath.Base(prog), prog, cmd)
}

// importAs makes an image holding prog at /name, with cmd.
func (p *podman) importAs(image, name, prog, cmd string) {
	p.t.Helper()
	if out, code := p.run("import", "--change", "CMD "+cmd, programTar(p.t, p.dir, name, prog), image); code != 0 {
		p.t.Fatalf("podman import: exit %d\n%s", code, out)
	}
}

// TestE2EOCIRuntimePodmanHTTP: a Go server image run with -d -p answers
// on the published port and on the container's own address (the guest
// owns the container's interface through the mirrored tap), its console
// is podman logs, and podman rm -f leaves nothing.
func TestE2EOCIRuntimePodmanHTTP(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		p := newPodman(t, e, guest, home)
		p.importProgram("localhost/ops-e2e-web:1", e.progs["goserver"], `["/goserver","8080"]`)
		args := append(append([]string{"run", "-d", "--name", "web", "-p", "127.0.0.1:18480:8080"}, p.runArgs...), "localhost/ops-e2e-web:1")
		start := time.Now()
		if out, code := p.run(args...); code != 0 {
			t.Fatalf("podman run -d: exit %d\n%s", code, out)
		}
		get := func(addr string) {
			nsGetHTTP(t, e, p.ns, addr, func() string { logs, _ := p.run("logs", "web"); return logs })
		}
		get("127.0.0.1:18480")
		t.Logf("%s guest: first answer on the published port %v after podman run -d", guest, time.Since(start).Round(time.Millisecond))
		ip, _ := p.run("inspect", "--format", "{{.NetworkSettings.IPAddress}}", "web")
		get(strings.TrimSpace(ip) + ":8080")
		p.waitLogs("web", "listening on 8080")
		pids := p.pids("web")
		if out, code := p.run("rm", "-f", "web"); code != 0 {
			t.Fatalf("podman rm -f: exit %d\n%s", code, out)
		}
		p.checkGone(pids)
	})
}

// TestE2EOCIRuntimePodmanVolume: a writable bind mount is shared with the
// guest, through virtio-9p with Nanos and virtio-fs with the Linux guest:
// what one container appends there, the next reads, and the host sees.
func TestE2EOCIRuntimePodmanVolume(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		p := newPodman(t, e, guest, home)
		data := filepath.Join(p.dir, "data")
		os.Mkdir(data, 0o755)
		for i, word := range []string{"first", "second"} {
			args := append(append([]string{"run", "--rm", "--network", "none", "-v", data + ":/data"}, p.runArgs...), podmanImage, "/hello", "append", "/data/log", word)
			out, code := p.run(args...)
			if code != 0 || !strings.Contains(out, "read: "+word) || (i == 1 && !strings.Contains(out, "read: first")) {
				t.Fatalf("container %d: exit %d\n%s", i, code, out)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(data, "log")); string(b) != "first\nsecond\n" {
			t.Fatalf("the host folder holds %q", b)
		}
		p.checkGone(nil)
	})
}

// TestE2EOCIRuntimePodmanFileMount: a writable file bind mount (podman
// -v FILE:PATH, as Kubernetes mounts its termination-log) is copied in,
// and what the program wrote is given back to the host file when it
// exits: on Nanos read from the image the guest wrote, on the Linux guest
// sent by init on the channel (below /dev too: init unpacks the
// container's own part once its devtmpfs is mounted).
func TestE2EOCIRuntimePodmanFileMount(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		p := newPodman(t, e, guest, home)
		for _, path := range []string{"/etc/app.log", "/dev/termination-log"} {
			host := filepath.Join(p.dir, filepath.Base(path))
			if err := os.WriteFile(host, []byte("before\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := append(append([]string{"run", "--rm", "--network", "none", "-v", host + ":" + path}, p.runArgs...), podmanImage, "/hello", "append", path, "after")
			out, code := p.run(args...)
			b, _ := os.ReadFile(host)
			switch {
			case code != 0 || !strings.Contains(out, "read: after"):
				t.Fatalf("%s: exit %d\n%s", path, code, out)
			case !strings.Contains(out, "read: before"):
				t.Fatalf("%s: the file was not copied in\n%s", path, out)
			case string(b) != "before\nafter\n":
				t.Fatalf("%s: the host file holds %q, want what the program appended", path, b)
			}
		}
		p.checkGone(nil)
	})
}

// TestE2EOCIRuntimePodmanLimits: QEMU runs in the container's cgroup
// under its memory and CPU limits, and the guest gets the memory the
// limit leaves beside QEMU's own.
func TestE2EOCIRuntimePodmanLimits(t *testing.T) {
	e := getEnv(t)
	p := newPodman(t, e, "nanos", nanosHome(t))
	args := append(append([]string{"run", "-d", "--name", "capped", "--network", "none", "--memory", "512m", "--cpus", "1"}, p.runArgs...), podmanImage, "/hello", "sleep", "600000")
	if out, code := p.run(args...); code != 0 {
		t.Fatalf("podman run -d: exit %d\n%s", code, out)
	}
	p.waitLogs("capped", "hello from C, 3 args")
	pids := p.pids("capped")
	qemuPid := pids[len(pids)-1]
	mem, cpu := cgroupLimits(qemuPid, "libpod")
	if mem != "536870912" || (cpu != "100000" && cpu != "100000 100000") {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", qemuPid))
		t.Fatalf("QEMU's cgroup limits: memory %q, CPU %q; want 512 MiB and one core\n%s", mem, cpu, b)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", qemuPid))
	if !strings.Contains(string(cmdline), "\x00-m\x00256M\x00") {
		t.Fatalf("QEMU's memory: %q, want 256M (512 MiB less QEMU's own 256)", strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	if out, code := p.run("rm", "-f", "capped"); code != 0 {
		t.Fatalf("podman rm -f: exit %d\n%s", code, out)
	}
	p.checkGone(pids)
}
