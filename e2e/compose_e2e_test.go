//go:build e2e

package e2e

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/opsdev/ops/compose"
	"github.com/opsdev/ops/elfdeps"
)

// redisImage pushes redisContainer to an in-process registry on
// 127.0.0.1 and returns its reference.
func redisImage(t testing.TB) string {
	t.Helper()
	img := redisContainer(t)
	ref := localRegistry(t) + "/library/redis:7"
	pushImage(t, ref, img)
	return ref
}

// redisContainer is a container image holding Debian's redis-server and
// its libraries, CMD ["redis-server"].
func redisContainer(t testing.TB) v1.Image {
	t.Helper()
	prog := "/usr/bin/redis-server"
	if _, err := os.Stat(prog); err != nil {
		t.Fatal("redis-server is not installed: run 'make test-deps' (the taxi example runs Debian's redis-server as a unikernel)")
	}
	deps, err := elfdeps.NewResolver("").Resolve(prog, prog)
	if err != nil {
		t.Fatal(err)
	}
	files := []elfdeps.Dep{{Guest: prog, Host: prog}}
	if deps.Interp != nil {
		files = append(files, *deps.Interp)
	}
	files = append(files, deps.Libs...)
	var ents []tarEnt
	dirs := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f.Host)
		if err != nil {
			t.Fatal(err)
		}
		for d := filepath.Dir(f.Guest); d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			ents = append([]tarEnt{{name: strings.TrimPrefix(d, "/") + "/", typ: tar.TypeDir, mode: 0o755}}, ents...)
		}
		ents = append(ents, tarEnt{name: strings.TrimPrefix(f.Guest, "/"), body: b, mode: 0o755})
	}
	img, err := mutate.AppendLayers(empty.Image, layer(t, ents))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Cmd = []string{"redis-server"}
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// taxiProject builds the taxi example's services into a temporary folder
// and copies its compose file there; env is what the file interpolates
// (REDIS_IMAGE, TRIP_PORT), written to the project's .env.
func taxiProject(t testing.TB, env map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(repoRoot(), "examples", "taxi")
	for _, s := range []string{"passenger", "trip", "dispatcher"} {
		c := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", s), "./"+s)
		c.Dir = src
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", s, err, out)
		}
	}
	doc, err := os.ReadFile(filepath.Join(src, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc = []byte(strings.Replace(string(doc), "name: taxi\n", fmt.Sprintf("name: taxi%d\n", os.Getpid()%1000), 1))
	var dotenv strings.Builder
	for k, v := range env {
		fmt.Fprintf(&dotenv, "%s=%s\n", k, v)
	}
	writeFiles(t, dir, map[string]string{"compose.yaml": string(doc), ".env": dotenv.String()})
	return dir
}

// taxiFlow posts n trips and waits until the dispatchers have dispatched
// them all; dispatched returns the dispatcher's log lines. post sends an
// HTTP request and returns the response text.
func taxiFlow(t *testing.T, n int, post func(method, path, body string) (string, error), dispatched func() string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for i := 1; i <= n; i++ {
		var resp string
		var err error
		for time.Now().Before(deadline) {
			if resp, err = post("POST", "trips", fmt.Sprintf(`{"passenger":"%d"}`, 40+i)); err == nil && strings.Contains(resp, fmt.Sprintf("Passenger %d", 40+i)) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !strings.Contains(resp, "Passenger") {
			t.Fatalf("trip service never answered with the passenger (last: %q, %v)\n%s", resp, err, dispatched())
		}
	}
	for time.Now().Before(deadline) {
		if strings.Count(dispatched(), "dispatching driver-1") >= n {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the dispatchers did not consume all %d TripCreated events:\n%s", n, dispatched())
}

// TestE2EComposeTaxi runs the taxi example's standard compose file
// without root: Redis from an image in a registry on 127.0.0.1, the
// services started once those they depend on are healthy, two dispatcher
// replicas sharing ten trips; then down -v leaves nothing behind.
func TestE2EComposeTaxi(t *testing.T) {
	e := getEnv(t)
	ref := redisImage(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		if guest == "nanos" {
			home = writableHome(t, home) // packages and volumes beside the linked release
		}
		port := freePorts(t, 1)
		dir := taxiProject(t, map[string]string{"REDIS_IMAGE": ref, "TRIP_PORT": strconv.Itoa(port)})
		ce := inDir(e, dir)
		name := "taxi" + strconv.Itoa(os.Getpid()%1000)
		defer ce.run(t, home, "compose", "down", "-v")
		r := ce.run(t, home, "compose", "up", "-d", "--guest", guest)
		if r.code != 0 {
			t.Fatalf("compose up -d: %s", r.stderr)
		}
		for _, want := range []string{"is local package image-redis:sha256-", "trip waits for passenger to be healthy", "trip waits for redis to be healthy"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("up -d did not say %q:\n%s", want, r.stderr)
			}
		}
		// ps: one line per replica, every one running and healthy.
		ps := ce.run(t, home, "compose", "ps")
		for _, inst := range []string{"redis", "passenger", "trip", "dispatcher-1", "dispatcher-2"} {
			if !regexp.MustCompile(name + "-" + inst + `\s+\S+\s+running\s+(healthy|starting)`).MatchString(ps.stdout) {
				t.Errorf("compose ps has no running %s:\n%s", inst, ps.stdout)
			}
		}
		// Nothing waits for the dispatchers (no service depends on them):
		// the trips go out once both read the stream, or one takes them all.
		deadline := time.Now().Add(time.Minute)
		for _, rep := range []string{"1", "2"} {
			healthy := regexp.MustCompile(name + "-dispatcher-" + rep + `\s+\S+\s+running\s+healthy`)
			for !healthy.MatchString(ce.run(t, home, "compose", "ps").stdout) {
				if time.Now().After(deadline) {
					t.Fatalf("dispatcher-%s never healthy:\n%s", rep, ce.run(t, home, "compose", "ps").stdout)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		post := poster(port)
		dispatched := func() string { return ce.run(t, home, "compose", "logs", "dispatcher").stdout }
		taxiFlow(t, 10, post, dispatched)
		// The trips went from guest to guest through the project's network
		// namespace: every QEMU runs unprivileged under the whole sandbox
		// (no process per connection to start).
		for inst, in := range listInstances(t, ce, home) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.QEMU))
			if !strings.Contains(string(b), "Seccomp:\t2") {
				t.Errorf("instance %s: QEMU (pid %d) runs without the sandbox", inst, in.QEMU)
			}
			if os.Geteuid() == 0 && regexp.MustCompile(`(?m)^Uid:\s+0\s`).Match(b) {
				t.Errorf("instance %s: QEMU (pid %d) runs as root", inst, in.QEMU)
			}
			if cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", in.QEMU)); !strings.Contains(string(cl), "spawn=deny") {
				t.Errorf("instance %s: QEMU may spawn processes: %q", inst, cl)
			}
		}
		logs := dispatched()
		for _, rep := range []string{"1", "2"} {
			if !regexp.MustCompile(`(?m)^` + name + `-dispatcher-` + rep + ` +\| dispatcher-` + rep + ` dispatching driver-1`).MatchString(logs) {
				t.Errorf("dispatcher replica %s handled none of the 10 trips:\n%s", rep, logs)
			}
		}
		// Connections by name take turns over the healthy replicas: ten to
		// dispatcher's address inside the project's network namespace, as
		// a guest makes them, go five to each, alternating.
		state := filepath.Join(home, "compose", name)
		holder, addr := projectNet(t, state, "dispatcher", 8080)
		var seen []string
		for i := 0; i < 10; i++ {
			c := exec.CommandContext(t.Context(), "nsenter", "-t", holder, "-n", "-U", "--preserve-credentials", e.ops, "proxy", addr)
			if os.Geteuid() == 0 {
				c = exec.CommandContext(t.Context(), "nsenter", "-t", holder, "-n", e.ops, "proxy", addr)
			}
			c.Stdin = strings.NewReader("GET /healthz HTTP/1.0\r\n\r\n")
			out, err := c.Output()
			m := regexp.MustCompile(`ok (dispatcher-\d)`).FindStringSubmatch(string(out))
			if err != nil || m == nil {
				t.Fatalf("dispatcher:8080 in the project's namespace: %v %q", err, out)
			}
			seen = append(seen, m[1])
		}
		for i := range seen {
			if i > 0 && seen[i] == seen[i-1] {
				t.Fatalf("by-name connections did not alternate over the replicas: %v", seen)
			}
		}
		// restart SERVICE stops and boots its replicas; trips still flow.
		if r := ce.run(t, home, "compose", "restart", "trip"); r.code != 0 {
			t.Fatalf("compose restart trip: %s", r.stderr)
		}
		deadline = time.Now().Add(2 * time.Minute)
		for resp, err := post("POST", "trips", `{"passenger":"99"}`); !strings.Contains(resp, "Passenger 99"); resp, err = post("POST", "trips", `{"passenger":"99"}`) {
			if time.Now().After(deadline) {
				t.Fatalf("no trip after restart: %q %v", resp, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		var pids []int
		for _, in := range listInstances(t, e, home) {
			if in.Status != "running" || in.QEMU == 0 {
				t.Fatalf("instance %s: %+v", in.Name, in)
			}
			pids = append(pids, in.QEMU, in.Sup)
		}
		// down keeps the named volume; down -v removes it.
		vol := name + "_redis-data"
		if r := ce.run(t, home, "compose", "down"); r.code != 0 {
			t.Fatalf("compose down: %s", r.stderr)
		}
		if r := e.run(t, home, "volume", "list"); !strings.Contains(r.stdout, vol) {
			t.Fatalf("compose down removed the volume %s:\n%s", vol, r.stdout)
		}
		if r := ce.run(t, home, "compose", "down", "-v"); r.code != 0 {
			t.Fatalf("compose down -v: %s", r.stderr)
		}
		if r := e.run(t, home, "volume", "list"); strings.Contains(r.stdout, vol) {
			t.Fatalf("compose down -v left the volume %s:\n%s", vol, r.stdout)
		}
		for _, p := range pids {
			if processAlive(p) {
				t.Fatalf("process %d still running after compose down", p)
			}
		}
		if l := listInstances(t, e, home); len(l) != 0 {
			t.Fatalf("instances left after compose down: %+v", l)
		}
		if procs := append(processesWith("/compose/"+name), processesWith(passtOfDispatcher1)...); len(procs) > 0 {
			t.Fatalf("processes of the project left after down: %v", procs)
		}
		if _, err := os.Stat(filepath.Join(home, "compose", name)); !os.IsNotExist(err) {
			t.Fatalf("project state left after compose down: %v", err)
		}
		if left, _ := filepath.Glob(filepath.Join(home, "compose", "*"+name+"*")); len(left) > 0 {
			t.Fatalf("left in the compose folder after down: %v", left)
		}
		if out, _ := exec.Command("ss", "-ltnpH").CombinedOutput(); strings.Contains(string(out), fmt.Sprintf(":%d ", port)) {
			t.Fatalf("port %d still listened on after down:\n%s", port, out)
		}
	})
}

// TestE2EComposeRootless: ops run by a user who is not root (nobody here)
// gets the project's network namespace through a user namespace of its
// own: the taxi trips flow by name, QEMU is that user's and sandboxed, and
// down leaves nothing. Redis comes from a docker-save tarball.
func TestE2EComposeRootless(t *testing.T) {
	e := getEnv(t)
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the test becomes nobody, which needs root (as any other user, TestE2EComposeTaxi is this test)")
	}
	const nobody = 65534
	port := freePorts(t, 1)
	dir := taxiProject(t, map[string]string{"REDIS_IMAGE": "./redis.tar", "TRIP_PORT": strconv.Itoa(port)})
	if err := tarball.WriteToFile(filepath.Join(dir, "redis.tar"), name.MustParseReference("redis:7"), redisContainer(t)); err != nil {
		t.Fatal(err)
	}
	// Everything nobody needs, in folders nobody can reach: the project,
	// its ops home, and ops itself.
	os.Chmod(filepath.Dir(dir), 0o755)
	home := filepath.Join(dir, "home")
	self := filepath.Join(dir, "ops")
	b, err := os.ReadFile(e.ops)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(self, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", nobody, nobody), dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	ne := inDir(e, dir)
	ne.ops, ne.cred = self, &syscall.Credential{Uid: nobody, Gid: nobody}
	name := "taxi" + strconv.Itoa(os.Getpid()%1000)
	defer ne.run(t, home, "compose", "down", "-v")
	r := ne.run(t, home, "compose", "up", "-d", "--guest", "linux")
	if r.code != 0 {
		if strings.Contains(r.stderr, "no network namespace") {
			t.Skipf("SKIP: this kernel gives unprivileged users no user namespace: %s", r.stderr)
		}
		t.Fatalf("compose up -d as nobody: %s", r.stderr)
	}
	taxiFlow(t, 4, poster(port), func() string { return ne.run(t, home, "compose", "logs", "dispatcher").stdout })
	state := filepath.Join(home, "compose", name)
	holder, _ := projectNet(t, state, "dispatcher", 8080)
	userNS, _ := os.Readlink("/proc/" + holder + "/ns/user")
	if self, _ := os.Readlink("/proc/self/ns/user"); userNS == "" || userNS == self {
		t.Errorf("the project's network holder (pid %s) is not in a user namespace of its own: %q", holder, userNS)
	}
	var pids []int
	for inst, in := range listInstances(t, ne, home) {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.QEMU))
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^Uid:\s+%d\s`, nobody)).Match(st) || !strings.Contains(string(st), "Seccomp:\t2") {
			t.Errorf("instance %s: QEMU (pid %d) is not nobody's and sandboxed:\n%s", inst, in.QEMU, st)
		}
		pids = append(pids, in.QEMU, in.Sup)
	}
	// The holder killed: ps says the network is down, and down still
	// removes everything.
	pid, _ := strconv.Atoi(holder)
	syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(30 * time.Second)
	for r := ne.run(t, home, "compose", "ps"); !strings.Contains(r.stderr, "network is down"); r = ne.run(t, home, "compose", "ps") {
		if time.Now().After(deadline) {
			t.Fatalf("compose ps does not say the network is down:\n%s%s", r.stdout, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := ne.run(t, home, "compose", "down", "-v"); r.code != 0 {
		t.Fatalf("compose down -v: %s", r.stderr)
	}
	for _, p := range pids {
		if processAlive(p) {
			t.Fatalf("process %d still running after compose down", p)
		}
	}
	if procs := append(processesWith("/compose/"+name), processesWith(passtOfDispatcher1)...); len(procs) > 0 {
		t.Fatalf("processes of the project left after down: %v", procs)
	}
}

// passtOfDispatcher1 is in the command line of the passt of the taxi's
// first dispatcher replica, in the project's namespace.
const passtOfDispatcher1 = "\x0010.0.3.1/8080:8080"

// poster sends HTTP requests to 127.0.0.1:port and returns the replies'
// text.
func poster(port int) func(method, path, body string) (string, error) {
	return func(method, path, body string) (string, error) {
		req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d/%s", port, path), strings.NewReader(body))
		c := http.Client{Timeout: 10 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
}

// projectSpec is the network of the project whose state folder is state.
func projectSpec(t testing.TB, state string) compose.NetSpec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "net.json"))
	if err != nil {
		t.Fatalf("the project has no network namespace: %v", err)
	}
	var spec compose.NetSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

// projectNet is the pid of a project's network holder and the address of
// service:port in its namespace, read from the project's state.
func projectNet(t *testing.T, state, service string, port int) (string, string) {
	t.Helper()
	pid, err := os.ReadFile(filepath.Join(state, "net.pid"))
	if err != nil {
		t.Fatalf("the project has no network holder: %v", err)
	}
	for _, b := range projectSpec(t, state).Balance {
		if b.Service == service && b.Port == port {
			return strings.TrimSpace(string(pid)), b.Listen
		}
	}
	t.Fatalf("no balancer for %s:%d in %s", service, port, state)
	return "", ""
}

// netns is a network namespace the test creates and removes; everything
// bridged happens inside it, never on the host's own interfaces.
func netns(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: bridged networking needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: no ip command (iproute2) to make a network namespace")
	}
	ns := fmt.Sprintf("opstest-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	return ns
}

// nsHTTP sends an HTTP request from inside the namespace, through
// `ops proxy` (which joins its standard input and output to an address).
func nsHTTP(e *env, ns, addr, method, path, body string) (string, error) {
	req := fmt.Sprintf("%s /%s HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body)
	c := exec.Command("ip", "netns", "exec", ns, e.ops, "proxy", addr)
	c.Stdin = strings.NewReader(req)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = c.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		c.Process.Kill()
		<-done
		return "", fmt.Errorf("timeout")
	}
	return string(out), err
}

func TestE2EComposeBridgedNetns(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		ns := netns(t)
		// Inside the namespace the registry is out of reach: Redis comes
		// from a docker save tarball.
		dir := taxiProject(t, map[string]string{"REDIS_IMAGE": "./redis.tar", "TRIP_PORT": "18080"})
		tag, _ := name.NewTag("redis:7")
		if err := tarball.WriteToFile(filepath.Join(dir, "redis.tar"), tag, redisContainer(t)); err != nil {
			t.Fatal(err)
		}
		cf := filepath.Join(dir, "compose.yaml")
		c := exec.Command("ip", "netns", "exec", ns, e.ops, "compose", "up", "--bridged", "-f", cf, "--guest", guest)
		c.Env = append(os.Environ(), opsHomeEnv(home))
		logf, _ := os.Create(filepath.Join(dir, "log"))
		c.Stdout, c.Stderr = logf, logf
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		defer func() {
			c.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				c.Process.Kill()
			}
		}()
		logs := func() string { b, _ := os.ReadFile(filepath.Join(dir, "log")); return string(b) }
		post := func(method, path, body string) (string, error) {
			return nsHTTP(e, ns, "127.0.0.1:18080", method, path, body)
		}
		taxiFlow(t, 10, post, logs)
		for _, rep := range []string{"1", "2"} {
			if !strings.Contains(logs(), "-dispatcher-"+rep+"] dispatcher-"+rep+" dispatching driver-1") {
				t.Errorf("dispatcher replica %s handled none of the 10 trips:\n%s", rep, logs())
			}
		}
		// The dispatcher's address (10.3.0.10, the host's on the bridge)
		// hands connections to its replicas (10.3.0.11, .12) in turn.
		var seen []string
		for i := 0; i < 6; i++ {
			out, err := nsHTTP(e, ns, "10.3.0.10:8080", "GET", "healthz", "")
			m := regexp.MustCompile(`ok (dispatcher-\d)`).FindStringSubmatch(out)
			if err != nil || m == nil {
				t.Fatalf("dispatcher at 10.3.0.10: %q %v", out, err)
			}
			if len(seen) > 0 && seen[len(seen)-1] == m[1] {
				t.Fatalf("connections to 10.3.0.10 did not alternate: %v %s", seen, m[1])
			}
			seen = append(seen, m[1])
		}
		if out, err := nsHTTP(e, ns, "10.3.0.11:8080", "GET", "dispatched", ""); err != nil || !strings.Contains(out, "driver-1") {
			t.Fatalf("dispatcher-1 at 10.3.0.11: %q %v", out, err)
		}
		c.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("compose did not stop on SIGINT")
		}
		out, _ := exec.Command("ip", "netns", "exec", ns, "ip", "-o", "link").CombinedOutput()
		if strings.Contains(string(out), "ops") {
			t.Fatalf("bridge or taps left behind:\n%s", out)
		}
	})
}

// TestE2ERunTap boots one guest on a tap device attached to a bridge,
// inside a network namespace, and reaches it at its static address.
func TestE2ERunTap(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		ns := netns(t)
		for _, args := range [][]string{
			{"link", "add", "br0", "type", "bridge"},
			{"addr", "add", "10.3.0.1/24", "dev", "br0"},
			{"link", "set", "br0", "up"},
		} {
			if out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "ip"}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v %s", args, err, out)
			}
		}
		c := exec.Command("ip", "netns", "exec", ns, e.ops, "run", "--guest", guest, "./goserver", "-b", "--tapname", "tap0",
			"--bridgename", "br0", "--ip", "10.3.0.10", "--gateway", "10.3.0.1", "--netmask", "255.255.255.0")
		c.Dir = e.dir
		c.Env = append(os.Environ(), opsHomeEnv(home))
		var out strings.Builder
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		ok := false
		for i := 0; i < 120 && !ok; i++ {
			resp, _ := nsHTTP(e, ns, "10.3.0.10:8080", "GET", "", "")
			ok = strings.Contains(resp, "hello over http")
			if !ok {
				time.Sleep(500 * time.Millisecond)
			}
		}
		c.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
		}
		if !ok {
			t.Fatalf("no answer from 10.3.0.10:8080 on the bridge\n%s", out.String())
		}
		links, _ := exec.Command("ip", "netns", "exec", ns, "ip", "-o", "link").CombinedOutput()
		if strings.Contains(string(links), "tap0") {
			t.Fatalf("tap0 left behind:\n%s", links)
		}
	})
}

// TestE2ELinuxDHCP: the Linux guest's init asks DHCP for its address when
// told to (QEMU's user-mode network has a DHCP server).
func TestE2ELinuxDHCP(t *testing.T) {
	e := getEnv(t)
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(`{"RunConfig": {"DHCP": true}}`), 0o644)
	port := freePorts(t, 1)
	stop := startServer(t, e, e.home, "run", "--guest", "linux", "-c", cfg, "./goserver", "--show-debug", "-p", fmt.Sprintf("%d:8080", port))
	if _, err := getUntil(fmt.Sprintf("http://127.0.0.1:%d/", port), time.Now().Add(90*time.Second)); err != nil {
		_, out := stop()
		t.Fatalf("no answer: %v\n%s", err, out)
	}
	if _, out := stop(); !strings.Contains(out, "DHCP lease 10.0.2.15/24") {
		t.Fatalf("init did not report a DHCP lease:\n%s", out)
	}
}

// TestE2EComposeBadInput: an unknown image, a service depending on
// itself, a host port published twice or already taken, an invalid
// healthcheck, the old format: one clear line each, nothing left behind.
func TestE2EComposeBadInput(t *testing.T) {
	e := getEnv(t)
	host := localRegistry(t)
	takenPort := busyPort(t)
	hello := e.progs["hello_static"]
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown image", "services:\n  a:\n    image: " + host + "/nope/missing:1\n", "service a: image " + host + "/nope/missing:1"},
		{"self dependency", "services:\n  a:\n    x-ops: {program: " + hello + "}\n    depends_on: [a]\n", "service a: depends_on a: a service cannot depend on itself"},
		{"port twice", "services:\n  a:\n    x-ops: {program: " + hello + "}\n    ports: [\"18999:80\"]\n  b:\n    x-ops: {program: " + hello + "}\n    ports: [\"18999:81\"]\n", "host port 127.0.0.1:18999 is published by a too"},
		{"port taken", fmt.Sprintf("services:\n  a:\n    x-ops: {program: %s}\n  b:\n    x-ops: {program: %s}\n    ports: [\"%d:80\"]\n", hello, hello, takenPort), "service b: "},
		{"invalid healthcheck", "services:\n  a:\n    x-ops: {program: " + hello + "}\n    healthcheck: {test: [\"CMD\", \"pg_isready\", \"-U\", \"postgres\"]}\n", `healthcheck test "CMD pg_isready -U postgres": a unikernel has no shell`},
		{"old format", "services:\n  a:\n    program: " + hello + "\n", `service a: "program" is ops's old compose format`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"compose.yaml": tc.doc})
			r := inDir(e, dir).run(t, home, "compose", "up", "-d", "--guest", "linux")
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code == 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "ops: ") || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("exit %d, stderr (want one line with %q):\n%s", r.code, tc.want, r.stderr)
			}
			if l := listInstances(t, e, home); len(l) != 0 {
				t.Fatalf("instances left: %+v", l)
			}
		})
	}
}

// TestE2EComposeForeground: up without -d runs the same instances, waits
// for a one-shot service to complete before starting the server that
// depends on it, prints the consoles with their names, and removes
// everything on Ctrl-C; a project whose services all exit ends with the
// TestE2EComposeBindMounts: a service's bind mounts, as compose files
// write them: a host folder is shared with the guest (what it appends
// reaches the host; a read-only one is read), a host file is copied into
// the image (the guest reads it and may write its copy; the host's stays,
// and up says so).
func TestE2EComposeBindMounts(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		if guest == "nanos" {
			home = writableHome(t, home)
		}
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"data/log.txt": "from the host\n",
			"conf/ro.txt":  "read-only from the host\n",
			"app.conf":     "conf from the host\n",
			"compose.yaml": fmt.Sprintf(`name: bind%d
services:
  folder:
    x-ops: {program: %s}
    command: [append, /data/log.txt, from the guest]
    volumes: ["./data:/data"]
  file:
    x-ops: {program: %s}
    command: [append, /etc/app.conf, appended in the guest]
    volumes: ["./app.conf:/etc/app.conf"]
  readonly:
    x-ops: {program: %s}
    command: [cat, /conf/ro.txt]
    volumes: ["./conf:/conf:ro"]
`, os.Getpid()%1000, e.progs["hello_static"], e.progs["hello_static"], e.progs["hello_static"]),
		})
		r := inDir(e, dir).run(t, home, "compose", "up", "--guest", guest)
		for _, want := range []string{"read: from the host", "read: from the guest", "read: conf from the host", "read: appended in the guest", "read: read-only from the host"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("no %q in the output", want)
			}
		}
		if r.code != 0 || !strings.Contains(r.stderr, "is copied into its image at /etc/app.conf") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "data", "log.txt")); string(b) != "from the host\nfrom the guest\n" {
			t.Errorf("the shared folder's file on the host: %q", b)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "app.conf")); string(b) != "conf from the host\n" {
			t.Errorf("the copied file changed on the host: %q", b)
		}
	})
}

// first non-zero exit code.
func TestE2EComposeForeground(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		port := freePorts(t, 1)
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"compose.yaml": fmt.Sprintf(`name: fg%d
services:
  init:
    x-ops: {program: %s}
    command: ["0"]
  web:
    x-ops: {program: %s}
    ports: ["%d:8080"]
    depends_on: {init: {condition: service_completed_successfully}}
    healthcheck: {test: ["CMD", "wget", "-q", "-O-", "http://localhost:8080/"], interval: 500ms, start_period: 60s}
`, os.Getpid()%1000, e.progs["hello_static"], filepath.Join(e.dir, "goserver"), port)})
		ce := inDir(e, dir)
		stop := startServer(t, ce, home, "compose", "up", "--guest", guest)
		if _, err := getUntil(fmt.Sprintf("http://127.0.0.1:%d/", port), time.Now().Add(2*time.Minute)); err != nil {
			_, out := stop()
			t.Fatalf("web does not answer: %v\n%s", err, out)
		}
		name := fmt.Sprintf("fg%d", os.Getpid()%1000)
		deadline := time.Now().Add(time.Minute)
		for !regexp.MustCompile(name + `-web\s+web\s+running\s+healthy`).MatchString(ce.run(t, home, "compose", "ps").stdout) {
			if time.Now().After(deadline) {
				t.Fatalf("web never healthy:\n%s", ce.run(t, home, "compose", "ps").stdout)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// Ctrl-C brings the project down, and up exits 130 as ops run does.
		code, out := stop()
		if code != 130 || !strings.Contains(out, name+"-init | hello from C") || !strings.Contains(out, "web waits for init to be completed successfully") ||
			!strings.Contains(out, "Ctrl-C stops them") {
			t.Fatalf("exit %d, want 130:\n%s", code, out)
		}
		if l := listInstances(t, e, home); len(l) != 0 {
			t.Fatalf("instances left after Ctrl-C: %+v", l)
		}
		if procs := processesWith("/compose/" + name); len(procs) > 0 {
			t.Fatalf("processes of the project (its network's holder) left after Ctrl-C: %v", procs)
		}
		// Every service exits: up ends with the first non-zero exit code.
		writeFiles(t, dir, map[string]string{"compose.yaml": "services:\n  a:\n    x-ops: {program: " + e.progs["hello_static"] + "}\n    command: [\"5\"]\n"})
		if r := ce.run(t, home, "compose", "up", "--guest", guest); r.code != 5 || !strings.Contains(r.stderr, "exited with 5") {
			t.Fatalf("exit %d, want 5:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if l := listInstances(t, e, home); len(l) != 0 {
			t.Fatalf("instances left after the services exited: %+v", l)
		}
	})
}

// TestE2EComposeImageCached: an image is converted into a package once
// per digest; a second up only asks the registry for the digest. (A host
// port already taken stops both ups after the images, before any boot.)
func TestE2EComposeImageCached(t *testing.T) {
	e := getEnv(t)
	ref := redisImage(t)
	taken := busyPort(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"compose.yaml": fmt.Sprintf("services:\n  redis:\n    image: %s\n    ports: [\"%d:6379\"]\n", ref, taken)})
	home := t.TempDir()
	for i, want := range []bool{true, false} {
		r := inDir(e, dir).run(t, home, "compose", "up", "-d", "--guest", "linux")
		if r.code == 0 || !strings.Contains(r.stderr, "in use") {
			t.Fatalf("up %d: exit %d\n%s", i+1, r.code, r.stderr)
		}
		if got := strings.Contains(r.stderr, "is local package image-redis:sha256-"); got != want {
			t.Fatalf("up %d converted the image: %v, want %v\n%s", i+1, got, want, r.stderr)
		}
	}
}

// processesWith lists the command lines of running processes that hold s.
func processesWith(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, en := range ents {
		if _, err := strconv.Atoi(en.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
