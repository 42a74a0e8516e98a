//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/opsdev/ops/elfdeps"
	"github.com/opsdev/ops/internal/fileutil"
)

// engineEnv is what a test of Docker, containerd or Kubernetes' CRI with
// ops as the runtime needs: a network namespace the test makes (every
// daemon runs inside it, entered with nsenter, and container addresses
// are reached only from inside it), a folder of its own for the
// daemons' data, state and sockets, and the ops-runtime link with its
// ops-runtime.json (ops home, guest). Each daemon it starts is stopped
// when the test ends, failed or not, and the folder is removed.
type engineEnv struct {
	t             testing.TB
	e             *env
	ns, dir, link string
}

// newEngineEnv readies an engine test for the guest and ops home given,
// or skips saying why it cannot run (not root, or a program missing).
func newEngineEnv(t testing.TB, e *env, guest, home string, tools ...string) *engineEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: container engines run as root here; run the e2e tests as root")
	}
	for _, tool := range append(tools, "nsenter") {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: no %s (make test-deps installs Debian's podman, docker.io, containerd, runc and containernetworking-plugins)", tool)
		}
	}
	ns := netns(t)
	// Short: the daemons' sockets live below it (108 bytes at most).
	dir, err := os.MkdirTemp("", "opsrt")
	if err != nil {
		t.Fatal(err)
	}
	x := &engineEnv{t: t, e: e, ns: ns, dir: dir, link: filepath.Join(dir, "bin", "ops-runtime")}
	t.Cleanup(x.removeDir)
	os.MkdirAll(filepath.Dir(x.link), 0o755)
	if err := os.Symlink(e.ops, x.link); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{"home": %q, "guest": %q, "root": %q}`, home, guest, filepath.Join(dir, "state"))
	if err := os.WriteFile(filepath.Join(dir, "bin", "ops-runtime.json"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return x
}

// run runs prog inside the namespace (3 minutes at most) and returns its
// output, standard error included, and exit code.
func (x *engineEnv) run(prog string, args ...string) (string, int) {
	x.t.Helper()
	c := exec.Command("nsenter", append([]string{"--net=/run/netns/" + x.ns, prog}, args...)...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		x.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		c.Process.Kill()
		<-done
		x.t.Fatalf("%s %s: no end within 3 minutes\n%s", prog, strings.Join(args, " "), out.String())
	}
	return out.String(), c.ProcessState.ExitCode()
}

// daemon starts prog inside the namespace, its output in DIR/NAME.log,
// waits until sock answers, and stops it (SIGTERM, then SIGKILL after 30
// s) when the test ends.
func (x *engineEnv) daemon(name, sock, prog string, args ...string) {
	x.t.Helper()
	logf, err := os.Create(filepath.Join(x.dir, name+".log"))
	if err != nil {
		x.t.Fatal(err)
	}
	c := exec.Command("nsenter", append([]string{"--net=/run/netns/" + x.ns, prog}, args...)...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		x.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); logf.Close(); close(done) }()
	x.t.Cleanup(func() {
		c.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			c.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, err := os.Stat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			x.t.Fatalf("%s exited as it started:\n%s", name, tail(string(b), 40))
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			x.t.Fatalf("%s did not make %s within a minute:\n%s", name, sock, tail(string(b), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// removeDir unmounts what the daemons left mounted below the folder
// (overlays, /dev/shm, network namespaces) and removes it.
func (x *engineEnv) removeDir() {
	b, _ := os.ReadFile("/proc/self/mounts")
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if f := strings.Fields(lines[i]); len(f) > 1 && strings.HasPrefix(f[1], x.dir+"/") {
			syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
	os.RemoveAll(x.dir)
}

// pids is a container's processes as ops-runtime ps reports them (its
// supervisor and QEMU), with the engine's runtime root.
func (x *engineEnv) pids(root, id string) []int {
	x.t.Helper()
	return runtimePids(x.t, x.link, "--root", root, "ps", "--format", "json", id)
}

// checkGone fails the test if any of pids still runs, or any of the
// runtime's state folders holds anything (a container's state, a
// hand-off record to runc).
func (x *engineEnv) checkGone(pids []int, roots ...string) {
	x.t.Helper()
	waitGone(x.t, 15*time.Second, pids, roots...)
}

// getHTTP waits (90 s at most) for the Go server's answer on addr, asked
// from inside the namespace.
func (x *engineEnv) getHTTP(addr string, logs func() string) {
	x.t.Helper()
	nsGetHTTP(x.t, x.e, x.ns, addr, logs)
}

// programTar is a layer tarball holding prog at /NAME, for docker import.
func (x *engineEnv) programTar(prog string) string {
	x.t.Helper()
	return programTar(x.t, x.dir, filepath.Base(prog), prog)
}

// programImage is an image holding prog at /NAME, started as cmd.
func programImage(t testing.TB, prog string, cmd ...string) v1.Image {
	t.Helper()
	b, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer(t, []tarEnt{{name: filepath.Base(prog), body: b, mode: 0o755}}))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Cmd = cmd
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// imageArchive writes images (by reference) as one docker-save archive
// in the folder, for ctr images import; made here, never pulled.
func (x *engineEnv) imageArchive(images map[string]v1.Image) string {
	x.t.Helper()
	refs := map[name.Reference]v1.Image{}
	for r, img := range images {
		ref, err := name.ParseReference(r)
		if err != nil {
			x.t.Fatal(err)
		}
		refs[ref] = img
	}
	p := filepath.Join(x.dir, "images.tar")
	if err := tarball.MultiRefWriteToFile(p, refs); err != nil {
		x.t.Fatal(err)
	}
	return p
}

// docker is Debian's dockerd with ops as a runtime named "ops", its data,
// exec root, socket and pid file in the test's folder.
type docker struct {
	*engineEnv
	client, sock string
}

// dockerRuntimeRoot is where dockerd's containerd shim keeps the
// runtime's state: --root EXEC_ROOT/runtime-runc/moby.
func (d *docker) runtimeRoot() string { return filepath.Join(d.dir, "exec", "runtime-runc", "moby") }

func newDocker(t testing.TB, e *env, guest, home string) *docker {
	t.Helper()
	x := newEngineEnv(t, e, guest, home, "dockerd", "containerd", "runc")
	// Debian's client, not another one that PATH may find first.
	client := "/usr/bin/docker"
	if _, err := os.Stat(client); err != nil {
		t.Skip("SKIP: no /usr/bin/docker (make test-deps installs Debian's docker.io)")
	}
	d := &docker{engineEnv: x, client: client, sock: filepath.Join(x.dir, "docker.sock")}
	conf := fmt.Sprintf(`{"runtimes": {"ops": {"path": %q}}}`, x.link)
	os.WriteFile(filepath.Join(x.dir, "daemon.json"), []byte(conf), 0o644)
	d.daemon("dockerd", d.sock, "dockerd", "--data-root", filepath.Join(x.dir, "data"), "--exec-root", filepath.Join(x.dir, "exec"),
		"-H", "unix://"+d.sock, "--pidfile", filepath.Join(x.dir, "docker.pid"), "--config-file", filepath.Join(x.dir, "daemon.json"),
		// Within the host's limits (the defaults are not, on this machine).
		"--default-ulimit", "nofile=20000:20000", "--default-ulimit", "nproc=1000:1000")
	// Registered after the daemon's stop, so it runs before it.
	t.Cleanup(func() {
		if ids, _ := d.docker("ps", "-a", "-q"); strings.TrimSpace(ids) != "" {
			d.docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
	})
	return d
}

func (d *docker) docker(args ...string) (string, int) {
	d.t.Helper()
	return d.run(d.client, append([]string{"-H", "unix://" + d.sock}, args...)...)
}

// importProgram makes an image holding prog at /NAME, with cmd.
func (d *docker) importProgram(image, prog, cmd string) {
	d.t.Helper()
	if out, code := d.docker("import", "--change", "CMD "+cmd, d.programTar(prog), image); code != 0 {
		d.t.Fatalf("docker import: exit %d\n%s", code, out)
	}
}

// lookupGo looks its arguments up with Go's own resolver, which reads
// /etc/hosts and /etc/resolv.conf as glibc does.
const lookupGo = `package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

func main() {
	for _, name := range os.Args[1:] {
		addrs, err := net.LookupHost(name)
		if err != nil {
			fmt.Println("lookup:", err)
			os.Exit(1)
		}
		fmt.Printf("%s is %s\n", name, strings.Join(addrs, " "))
	}
}
`

// TestE2EOCIRuntimeDocker runs the hello image with docker run --rm
// --runtime ops, on Docker's default bridge and on a network of its own
// (whose DNS is Docker's 127.0.0.11): its output and exit code come
// through, and nothing is left. On the network of its own, a program
// in the unikernel resolves the container's name and alias, which only
// Docker's resolver on the namespace's loopback knows (they are not in
// /etc/hosts): through the supervisor's relay.
func TestE2EOCIRuntimeDocker(t *testing.T) {
	e := getEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"main.go": lookupGo, "go.mod": "module lookup\n\ngo 1.22\n"})
	if err := run(dir, "go", "build", "-o", "lookup", "."); err != nil {
		t.Fatal(err)
	}
	forEachGuest(t, func(t *testing.T, guest, home string) {
		d := newDocker(t, e, guest, home)
		d.importProgram("ops-e2e-hello:1", e.progs["hello_static"], `["/hello_static","3"]`)
		d.importProgram("ops-e2e-lookup:1", filepath.Join(dir, "lookup"), `["/lookup","dnsprobe","db"]`)
		if out, code := d.docker("network", "create", "--subnet", "192.0.2.0/24", "opsnet"); code != 0 {
			t.Fatalf("docker network create: exit %d\n%s", code, out)
		}
		for _, network := range []string{"bridge", "opsnet", "none"} {
			start := time.Now()
			out, code := d.docker("run", "--rm", "--runtime", "ops", "--network", network, "ops-e2e-hello:1")
			took := time.Since(start)
			if code != 3 || !strings.Contains(out, "hello from C, 2 args\n") {
				t.Fatalf("network %s: exit %d, want 3\n%s", network, code, out)
			}
			t.Logf("%s guest, network %s: docker run --rm --runtime ops exited 3 after %v", guest, network, took.Round(time.Millisecond))
		}
		out, code := d.docker("run", "--rm", "--runtime", "ops", "--network", "opsnet", "--ip", "192.0.2.50",
			"--name", "dnsprobe", "--network-alias", "db", "ops-e2e-lookup:1")
		if code != 0 || !strings.Contains(out, "dnsprobe is 192.0.2.50\n") || !strings.Contains(out, "db is 192.0.2.50\n") {
			t.Fatalf("names on opsnet: exit %d\n%s", code, out)
		}
		t.Logf("%s guest on opsnet, through the DNS relay: %s", guest, strings.Join(strings.Fields(out), " "))
		d.checkGone(nil, d.runtimeRoot())
	})
}

// TestE2EOCIRuntimeDockerSharedBase: the containers of one image share a
// base (their root filesystem's files, the kernel's on Nanos, init and
// the modules on the Linux guest), kept in the runtime root's @bases, so
// the second container of an image writes only its own part: after two
// containers of the hello image, with other host names and variables,
// the runtime root holds one base, the same file the first one wrote; a
// container of another image adds its own. Docker's layers are extracted
// just before: the first container waits until their times are old
// enough to be trusted.
func TestE2EOCIRuntimeDockerSharedBase(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		d := newDocker(t, e, guest, home)
		d.importProgram("ops-e2e-hello:1", e.progs["hello_static"], `["/hello_static","3"]`)
		again := filepath.Join(t.TempDir(), "hello_again")
		if err := fileutil.CopyFile(e.progs["hello_static"], again, 0o755); err != nil {
			t.Fatal(err)
		}
		d.importProgram("ops-e2e-hello2:1", again, `["/hello_again","3"]`)
		d.importProgram("ops-e2e-web:1", e.progs["goserver"], `["/goserver","8080"]`)
		time.Sleep(2100 * time.Millisecond) // lepton's racy window
		bases := filepath.Join(d.runtimeRoot(), "@bases")
		run := func(image string, args ...string) {
			t.Helper()
			out, code := d.docker(append(append([]string{"run", "--rm", "--runtime", "ops"}, args...), image)...)
			if code != 3 || !strings.Contains(out, "hello from C") {
				t.Fatalf("%s: exit %d, want 3\n%s", image, code, out)
			}
		}
		list := func() []os.FileInfo {
			t.Helper()
			ents, err := os.ReadDir(bases)
			if err != nil {
				t.Fatal(err)
			}
			var out []os.FileInfo
			for _, e := range ents {
				if !strings.Contains(e.Name(), ".") {
					st, err := os.Stat(filepath.Join(bases, e.Name()))
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, st)
				}
			}
			return out
		}
		run("ops-e2e-hello:1", "--hostname", "first", "-e", "WHO=first")
		first := list()
		if len(first) != 1 {
			t.Fatalf("bases after the first container: %d, want 1", len(first))
		}
		start := time.Now()
		run("ops-e2e-hello:1", "--hostname", "the-second-one", "-e", "WHO=second")
		t.Logf("the second container of the image ran in %v", time.Since(start).Round(time.Millisecond))
		second := list()
		if len(second) != 1 || !os.SameFile(first[0], second[0]) {
			t.Fatalf("bases after the second container: %d, the first one's kept: %v", len(second), len(second) == 1 && os.SameFile(first[0], second[0]))
		}
		run("ops-e2e-hello2:1")
		if n := len(list()); n != 2 {
			t.Fatalf("bases after a container of another image: %d, want 2", n)
		}
		d.checkGone(nil, d.runtimeRoot())

		// Two servers of one image at once, each answering on its own
		// address with its own MAC (the namespace's neighbour entry is
		// Docker's MAC for it): on the Linux guest the second starts from
		// the snapshot the first saved, and init gives the card its MAC.
		var addrs []string
		for _, name := range []string{"web1", "web2"} {
			logs := func() string { out, _ := d.docker("logs", name); return out }
			start := time.Now()
			if out, code := d.docker("run", "-d", "--runtime", "ops", "--name", name, "--hostname", name, "ops-e2e-web:1"); code != 0 {
				t.Fatalf("docker run -d %s: exit %d\n%s", name, code, out)
			}
			ip, _ := d.docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", name)
			ip = strings.TrimSpace(ip)
			d.getHTTP(ip+":8080", logs)
			t.Logf("%s guest: %s answered on %s after %v", guest, name, ip, time.Since(start).Round(time.Millisecond))
			mac, _ := d.docker("inspect", "--format", "{{.NetworkSettings.MacAddress}}", name)
			if neigh, _ := d.run("ip", "neigh", "show", ip); !strings.Contains(neigh, strings.TrimSpace(mac)) {
				t.Fatalf("%s: the namespace has %q for %s, Docker gave it %s", name, neigh, ip, mac)
			}
			addrs = append(addrs, ip)
		}
		for _, ip := range addrs {
			d.getHTTP(ip+":8080", func() string { return "" })
		}
		if out, code := d.docker("rm", "-f", "web1", "web2"); code != 0 {
			t.Fatalf("docker rm -f: exit %d\n%s", code, out)
		}
		d.checkGone(nil, d.runtimeRoot())
	})
}

// TestE2EOCIRuntimeDockerHTTP: the Go server image run with docker run
// -d --runtime ops -p answers on the published port and on the
// container's own address, docker logs shows its console, docker exec
// is one error line, docker stop presses the power button (exit 143),
// and docker rm -f of a running one leaves no supervisor, QEMU or state.
func TestE2EOCIRuntimeDockerHTTP(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		d := newDocker(t, e, guest, home)
		d.importProgram("ops-e2e-web:1", e.progs["goserver"], `["/goserver","8080"]`)
		logs := func(name string) func() string {
			return func() string { out, _ := d.docker("logs", name); return out }
		}
		start := time.Now()
		if out, code := d.docker("run", "-d", "--runtime", "ops", "--name", "web", "-p", "127.0.0.1:18481:8080", "ops-e2e-web:1"); code != 0 {
			t.Fatalf("docker run -d: exit %d\n%s", code, out)
		}
		d.getHTTP("127.0.0.1:18481", logs("web"))
		t.Logf("%s guest: first answer on the published port %v after docker run -d", guest, time.Since(start).Round(time.Millisecond))
		ip, _ := d.docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", "web")
		d.getHTTP(strings.TrimSpace(ip)+":8080", logs("web"))
		if l := logs("web")(); !strings.Contains(l, "listening on 8080") {
			t.Fatalf("docker logs: %q", l)
		}
		id, _ := d.docker("inspect", "--format", "{{.Id}}", "web")
		pids := d.pids(d.runtimeRoot(), strings.TrimSpace(id))
		if len(pids) != 2 {
			t.Fatalf("ops-runtime ps of a running container: %v, want the supervisor and QEMU", pids)
		}
		out, code := d.docker("exec", "web", "/goserver")
		if code == 0 || !strings.Contains(out, "a unikernel runs one program: exec is not supported") {
			t.Fatalf("docker exec: exit %d\n%s", code, out)
		}
		start = time.Now()
		if out, code := d.docker("stop", "web"); code != 0 {
			t.Fatalf("docker stop: exit %d\n%s", code, out)
		}
		t.Logf("%s guest: docker stop took %v", guest, time.Since(start).Round(time.Millisecond))
		if out, _ := d.docker("inspect", "--format", "{{.State.ExitCode}}", "web"); strings.TrimSpace(out) != "143" {
			t.Fatalf("exit code after docker stop: %s, want 143 (SIGTERM)", out)
		}
		if out, code := d.docker("rm", "web"); code != 0 {
			t.Fatalf("docker rm: exit %d\n%s", code, out)
		}
		d.checkGone(pids, d.runtimeRoot())

		if out, code := d.docker("run", "-d", "--runtime", "ops", "--name", "web2", "ops-e2e-web:1"); code != 0 {
			t.Fatalf("docker run -d: exit %d\n%s", code, out)
		}
		ip, _ = d.docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", "web2")
		d.getHTTP(strings.TrimSpace(ip)+":8080", logs("web2"))
		id, _ = d.docker("inspect", "--format", "{{.Id}}", "web2")
		pids = d.pids(d.runtimeRoot(), strings.TrimSpace(id))
		start = time.Now()
		if out, code := d.docker("rm", "-f", "web2"); code != 0 {
			t.Fatalf("docker rm -f: exit %d\n%s", code, out)
		}
		t.Logf("%s guest: docker rm -f of a running container took %v", guest, time.Since(start).Round(time.Millisecond))
		d.checkGone(pids, d.runtimeRoot())
	})
}

// containerd is Debian's containerd, standalone, its root, state and
// sockets in the test's folder; with cri, its CRI plugin has a runtime
// handler "ops" (the runc shim with ops-runtime as its binary), a CNI
// bridge on TEST-NET-1 inside the namespace, and a pause image made here.
type containerd struct {
	*engineEnv
	sock string
}

const (
	pauseImage = "localhost/ops-e2e-pause:1"
	helloImage = "localhost/ops-e2e-hello:1"
	webImage   = "localhost/ops-e2e-web:1"
)

// containerdConfig is config.toml (version 2: containerd 1.6) for a
// containerd whose every file is below DIR, and whose CRI plugin runs
// the handler "ops" with LINK.
const containerdConfig = `version = 2
root = "{{DIR}}/root"
state = "{{DIR}}/run"
[grpc]
  address = "{{DIR}}/containerd.sock"
[ttrpc]
  address = "{{DIR}}/containerd.sock.ttrpc"
[debug]
  address = "{{DIR}}/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "` + pauseImage + `"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{{DIR}}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ops]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ops.options]
      BinaryName = "{{LINK}}"
      Root = "{{DIR}}/ops-root"
`

// cniConfig is the pods' network: a bridge with host-local addresses
// from TEST-NET-1, its leases below DIR.
const cniConfig = `{"cniVersion": "0.4.0", "name": "opstest", "plugins": [
  {"type": "bridge", "bridge": "cni-ops0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "192.0.2.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "{{DIR}}/ipam"}}
]}
`

func newContainerd(t *testing.T, e *env, guest, home string) *containerd {
	t.Helper()
	x := newEngineEnv(t, e, guest, home, "containerd", "ctr", "containerd-shim-runc-v2", "runc")
	c := &containerd{engineEnv: x, sock: filepath.Join(x.dir, "containerd.sock")}
	fill := func(s string) string { return strings.NewReplacer("{{DIR}}", x.dir, "{{LINK}}", x.link).Replace(s) }
	os.MkdirAll(filepath.Join(x.dir, "cni"), 0o755)
	os.WriteFile(filepath.Join(x.dir, "config.toml"), []byte(fill(containerdConfig)), 0o644)
	os.WriteFile(filepath.Join(x.dir, "cni", "10-opstest.conflist"), []byte(fill(cniConfig)), 0o644)
	c.daemon("containerd", c.sock, "containerd", "--config", filepath.Join(x.dir, "config.toml"))
	return c
}

func (c *containerd) ctr(args ...string) (string, int) {
	c.t.Helper()
	return c.run("ctr", append([]string{"-a", c.sock}, args...)...)
}

// TestE2EOCIRuntimeContainerd runs the hello image, imported from an
// archive made here, with ctr run --runc-binary ops-runtime --rm: its
// output and exit code come through, and nothing is left.
func TestE2EOCIRuntimeContainerd(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		c := newContainerd(t, e, guest, home)
		archive := c.imageArchive(map[string]v1.Image{helloImage: programImage(t, e.progs["hello_static"], "/hello_static", "3")})
		if out, code := c.ctr("images", "import", archive); code != 0 {
			t.Fatalf("ctr images import: exit %d\n%s", code, out)
		}
		root := filepath.Join(c.dir, "ctr-root")
		fifos := filepath.Join(c.dir, "fifo") // not /run/containerd/fifo
		start := time.Now()
		out, code := c.ctr("run", "--runc-binary", c.link, "--runc-root", root, "--fifo-dir", fifos, "--rm", helloImage, "hello1")
		took := time.Since(start)
		if code != 3 || !strings.Contains(out, "hello from C, 2 args\n") {
			t.Fatalf("ctr run: exit %d, want 3\n%s", code, out)
		}
		t.Logf("%s guest: ctr run --rm exited 3 after %v", guest, took.Round(time.Millisecond))
		out, code = c.ctr("run", "--runc-binary", c.link, "--runc-root", root, "--fifo-dir", fifos, "--rm", helloImage, "hello2", "/hello_static", "a", "b")
		if code != 0 || !strings.Contains(out, "hello from C, 3 args\n") {
			t.Fatalf("ctr run with args: exit %d, want 0\n%s", code, out)
		}
		c.checkGone(nil, filepath.Join(root, "default"))
	})
}

// crictl is cri-tools' crictl, built from the Go module proxy into
// .work/tools once; the test skips, saying so, when it cannot be built.
func crictl(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(repoRoot(), ".work", "tools")
	bin := filepath.Join(dir, "crictl")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	c := exec.Command("go", "install", "sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0")
	c.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
	if out, err := c.CombinedOutput(); err != nil {
		t.Skipf("SKIP: crictl could not be built from the Go module proxy (go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0): %v\n%s", err, tail(string(out), 5))
	}
	return bin
}

// pauseC is the pod sandbox's program: it sleeps until signalled.
const pauseC = `#include <signal.h>
#include <unistd.h>
static void quit(int sig) { _exit(0); }
int main(void) {
	signal(SIGINT, quit);
	signal(SIGTERM, quit);
	for (;;) pause();
}
`

// pauseProgram builds the static pause program in the folder.
func (x *engineEnv) pauseProgram() string {
	x.t.Helper()
	src := filepath.Join(x.dir, "pause.c")
	os.WriteFile(src, []byte(pauseC), 0o644)
	if err := run(x.dir, "gcc", "-O2", "-static", "-o", "pause", "pause.c"); err != nil {
		x.t.Fatal(err)
	}
	return filepath.Join(x.dir, "pause")
}

// TestE2EOCIRuntimeCRI runs a pod through containerd's CRI plugin with
// crictl and the runtime handler "ops": the pod's sandbox (pause) goes to
// runc, the Go server container is a unikernel that answers HTTP on the
// pod's IP, a second unikernel in the pod is one error line, and crictl
// stop, rm, stopp and rmp leave nothing.
func TestE2EOCIRuntimeCRI(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		cri := crictl(t)
		c := newContainerd(t, e, guest, home)
		archive := c.imageArchive(map[string]v1.Image{
			pauseImage: programImage(t, c.pauseProgram(), "/pause"),
			webImage:   programImage(t, e.progs["goserver"], "/goserver", "8080"),
		})
		if out, code := c.ctr("-n", "k8s.io", "images", "import", archive); code != 0 {
			t.Fatalf("ctr images import: exit %d\n%s", code, out)
		}
		conf := filepath.Join(c.dir, "crictl.yaml")
		os.WriteFile(conf, []byte(fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 120\n", c.sock, c.sock)), 0o644)
		crictl := func(args ...string) (string, int) {
			t.Helper()
			return c.run(cri, append([]string{"--config", conf}, args...)...)
		}
		ids := func(out string) string { // the last line: crictl's warnings come first
			l := strings.Split(strings.TrimSpace(out), "\n")
			return strings.TrimSpace(l[len(l)-1])
		}
		t.Cleanup(func() { // before containerd stops
			crictl("rm", "-a", "-f")
			if out, _ := crictl("pods", "-q"); strings.TrimSpace(out) != "" {
				for _, p := range strings.Fields(out) {
					crictl("stopp", p)
					crictl("rmp", "-f", p)
				}
			}
		})
		podConf := filepath.Join(c.dir, "pod.json")
		os.MkdirAll(filepath.Join(c.dir, "podlogs"), 0o755)
		os.WriteFile(podConf, []byte(fmt.Sprintf(`{"metadata": {"name": "web", "namespace": "default", "uid": "ops-e2e-%s"},
			"log_directory": %q, "linux": {}}`, guest, filepath.Join(c.dir, "podlogs"))), 0o644)
		ctrConf := func(name string) string {
			p := filepath.Join(c.dir, name+".json")
			os.WriteFile(p, []byte(fmt.Sprintf(`{"metadata": {"name": %q}, "image": {"image": %q}, "command": ["/goserver", "8080"],
				"log_path": %q, "linux": {}}`, name, webImage, name+".log")), 0o644)
			return p
		}
		start := time.Now()
		out, code := crictl("runp", "--runtime", "ops", podConf)
		if code != 0 {
			t.Fatalf("crictl runp: exit %d\n%s", code, out)
		}
		pod := ids(out)
		t.Logf("%s guest: crictl runp took %v", guest, time.Since(start).Round(time.Millisecond))
		opsRoot := filepath.Join(c.dir, "ops-root", "k8s.io")
		if _, err := os.Stat(filepath.Join(opsRoot, "@runc", pod)); err != nil {
			t.Fatalf("the pod's sandbox was not handed to runc: %v", err)
		}
		ip, _ := crictl("inspectp", "-o", "go-template", "--template", "{{.status.network.ip}}", pod)
		ip = ids(ip)
		start = time.Now()
		out, code = crictl("create", pod, ctrConf("server"), podConf)
		if code != 0 {
			t.Fatalf("crictl create: exit %d\n%s", code, out)
		}
		server := ids(out)
		if out, code := crictl("start", server); code != 0 {
			t.Fatalf("crictl start: exit %d\n%s", code, out)
		}
		c.getHTTP(ip+":8080", func() string { out, _ := crictl("logs", server); return out })
		t.Logf("%s guest: first answer on the pod's IP %s %v after crictl create", guest, ip, time.Since(start).Round(time.Millisecond))
		pids := c.pids(opsRoot, server)
		if len(pids) != 2 {
			t.Fatalf("ops-runtime ps of the running server: %v, want the supervisor and QEMU", pids)
		}

		// A second unikernel in the pod cannot take its address.
		out, code = crictl("create", pod, ctrConf("second"), podConf)
		if code != 0 {
			t.Fatalf("crictl create of a second container: exit %d\n%s", code, out)
		}
		second := ids(out)
		out, code = crictl("start", second)
		if code == 0 || !strings.Contains(out, "one unikernel per network namespace: eth0 ("+ip+"/24) is another container's VM already") {
			t.Fatalf("crictl start of a second unikernel in the pod: exit %d\n%s", code, out)
		}
		c.getHTTP(ip+":8080", func() string { out, _ := crictl("logs", server); return out })
		if out, code := crictl("rm", second); code != 0 {
			t.Fatalf("crictl rm of the refused container: exit %d\n%s", code, out)
		}

		start = time.Now()
		for _, args := range [][]string{{"stop", server}, {"rm", server}, {"stopp", pod}, {"rmp", pod}} {
			if out, code := crictl(args...); code != 0 {
				t.Fatalf("crictl %s: exit %d\n%s", args[0], code, out)
			}
		}
		t.Logf("%s guest: crictl stop, rm, stopp and rmp took %v", guest, time.Since(start).Round(time.Millisecond))
		if out, _ := crictl("pods", "-q"); strings.TrimSpace(out) != "" {
			t.Fatalf("pods left: %s", out)
		}
		c.checkGone(pids, opsRoot)
	})
}

// TestE2EOCIRuntimeDockerRedisVolume: Debian's redis-server as a Docker
// image (the program and the libraries it needs, found by reading its
// ELF) with a bind-mounted data folder, shared through virtio-9p with
// Nanos and virtio-fs with the Linux guest: docker stop presses the power
// button, redis saves what it was told into the folder, and a new
// container sees it.
func TestE2EOCIRuntimeDockerRedisVolume(t *testing.T) {
	e := getEnv(t)
	prog := debianProgram(t, "/usr/bin/redis-server", "redis-server")
	forEachGuest(t, func(t *testing.T, guest, home string) { dockerRedisVolume(t, e, prog, guest, home) })
}

func dockerRedisVolume(t *testing.T, e *env, prog, guest, home string) {
	d := newDocker(t, e, guest, home)
	deps, err := elfdeps.NewResolver("/").Resolve(prog, prog)
	if err != nil {
		t.Fatal(err)
	}
	var ents []tarEnt
	for _, f := range append([]elfdeps.Dep{{Guest: prog, Host: prog}, *deps.Interp}, deps.Libs...) {
		b, err := os.ReadFile(f.Host)
		if err != nil {
			t.Fatal(err)
		}
		ents = append(ents, tarEnt{name: strings.TrimPrefix(f.Guest, "/"), body: b, mode: 0o755})
	}
	tarball := tarFile(t, filepath.Join(d.dir, "redis.tar"), ents)
	// No append-only file: what the first container was told reaches the
	// folder only as the snapshot redis writes when SIGTERM stops it
	// (Nanos 0.1.55 faults reading an append-only folder back from a 9p
	// share).
	cmd := `["/usr/bin/redis-server","--dir","/data","--protected-mode","no"]`
	if out, code := d.docker("import", "--change", "CMD "+cmd, tarball, "ops-e2e-redis:1"); code != 0 {
		t.Fatalf("docker import: exit %d\n%s", code, out)
	}
	data := filepath.Join(d.dir, "redis-data")
	os.Mkdir(data, 0o755)
	for i, step := range []struct{ send, want string }{
		{"SET k kept\r\n", "+OK\r\n"},
		{"GET k\r\n", "$4\r\nkept\r\n"},
	} {
		name := fmt.Sprintf("redis%d", i)
		if out, code := d.docker("run", "-d", "--runtime", "ops", "--name", name, "-v", data+":/data", "ops-e2e-redis:1"); code != 0 {
			t.Fatalf("docker run -d: exit %d\n%s", code, out)
		}
		ip, _ := d.docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", name)
		got, err := nsRedis(e, d.ns, strings.TrimSpace(ip)+":6379", step.send)
		if got != step.want {
			logs, _ := d.docker("logs", name)
			t.Fatalf("container %d: %q, want %q (%v)\n%s", i, got, step.want, err, logs)
		}
		if out, code := d.docker("stop", name); code != 0 {
			t.Fatalf("docker stop: exit %d\n%s", code, out)
		}
		if logs, _ := d.docker("logs", name); !strings.Contains(logs, "ready to exit, bye bye") {
			t.Fatalf("redis did not shut down on SIGTERM:\n%s", logs)
		}
		d.docker("rm", name)
	}
	if _, err := os.Stat(filepath.Join(data, "dump.rdb")); err != nil {
		t.Fatalf("redis's data is not in the bind-mounted folder: %v", err)
	}
}

// nsRedis sends redis commands from inside the namespace until the
// server answers (90 s at most), through ops proxy as nsHTTP does.
func nsRedis(e *env, ns, addr, cmds string) (string, error) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		c := exec.Command("nsenter", "--net=/run/netns/"+ns, e.ops, "proxy", addr)
		c.Stdin = strings.NewReader(cmds)
		out, err := c.Output()
		if err == nil && len(out) > 0 || time.Now().After(deadline) {
			return string(out), err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
