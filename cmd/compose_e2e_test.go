package cmd_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// taxiProject builds the taxi example's services into a temporary folder
// and writes its compose file there, publishing on the given host ports.
func taxiProject(t *testing.T, e *env, tripPort, dispPort int) string {
	t.Helper()
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: run 'make test-deps' (the taxi example runs Debian's redis-server as a unikernel)")
	}
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
	doc := fmt.Sprintf(`name: taxi%d
services:
  redis:
    program: %s
    args: ["--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
    expose: [6379]
  passenger:
    program: ./bin/passenger
    expose: [8080]
  trip:
    program: ./bin/trip
    expose: [8080]
    ports: ["%d:8080"]
  dispatcher:
    program: ./bin/dispatcher
    expose: [8080]
    ports: ["%d:8080"]
`, os.Getpid()%1000, redis, tripPort, dispPort)
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// taxiFlow posts a trip and waits until the dispatcher has dispatched it.
// post sends an HTTP request and returns the response text.
func taxiFlow(t *testing.T, post func(method, path, body string) (string, error), logs func() string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var resp string
	var err error
	for time.Now().Before(deadline) {
		if resp, err = post("POST", "trip/trips", `{"passenger":"42"}`); err == nil && strings.Contains(resp, "Passenger 42") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(resp, "Passenger 42") {
		t.Fatalf("trip service never answered with the passenger (last: %q, %v)\n%s", resp, err, logs())
	}
	for time.Now().Before(deadline) {
		if resp, err = post("GET", "dispatcher/dispatched", ""); err == nil && strings.Contains(resp, "driver-1") {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the dispatcher never consumed the TripCreated event (last: %q, %v)\n%s", resp, err, logs())
}

// TestE2EComposeTaxi runs the taxi example without root: four
// unikernels, names resolved from /etc/hosts, forwards through the host's
// loopback; started with up -d, stopped with down.
func TestE2EComposeTaxi(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		base := freePorts(t, 2)
		dir := taxiProject(t, e, base, base+1)
		cf := filepath.Join(dir, "compose.yaml")
		r := e.run(t, home, "compose", "up", "-d", "-f", cf, "--guest", guest)
		if r.code != 0 {
			t.Fatalf("compose up -d: %s", r.stderr)
		}
		name := "taxi" + strconv.Itoa(os.Getpid()%1000)
		// up -d leaves one instance per service, named <project>-<service>.
		services := []string{"dispatcher", "passenger", "redis", "trip"}
		logs := func() string {
			var sb strings.Builder
			for _, svc := range services {
				sb.WriteString(e.run(t, home, "instance", "logs", name+"-"+svc).stdout)
			}
			return sb.String()
		}
		defer e.run(t, home, "compose", "down", "-f", cf)
		ports := map[string]int{"trip": base, "dispatcher": base + 1}
		post := func(method, path, body string) (string, error) {
			svc, rest, _ := strings.Cut(path, "/")
			req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d/%s", ports[svc], rest), strings.NewReader(body))
			c := http.Client{Timeout: 10 * time.Second}
			resp, err := c.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b), nil
		}
		taxiFlow(t, post, logs)
		var qemus []int
		for _, svc := range services {
			in := listInstances(t, e, home)[name+"-"+svc]
			if in.Status != "running" || in.QEMU == 0 {
				t.Fatalf("instance %s-%s: %+v", name, svc, in)
			}
			qemus = append(qemus, in.QEMU, in.Sup)
		}
		if r := e.run(t, home, "compose", "down", "-f", cf); r.code != 0 {
			t.Fatalf("compose down: %s", r.stderr)
		}
		for _, p := range qemus {
			if processAlive(p) {
				t.Fatalf("process %d still running after compose down", p)
			}
		}
		if l := listInstances(t, e, home); len(l) != 0 {
			t.Fatalf("instances left after compose down: %+v", l)
		}
	})
}

// netns is a network namespace the test creates and removes; everything
// bridged happens inside it, never on the host's own interfaces.
func netns(t *testing.T) string {
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
		dir := taxiProject(t, e, 18080, 18081)
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
			svc, rest, _ := strings.Cut(path, "/")
			port := map[string]int{"trip": 18080, "dispatcher": 18081}[svc]
			return nsHTTP(e, ns, fmt.Sprintf("127.0.0.1:%d", port), method, rest, body)
		}
		taxiFlow(t, post, logs)
		// The guests are on the bridge at their own addresses.
		if out, err := nsHTTP(e, ns, "10.3.0.10:8080", "GET", "dispatched", ""); err != nil || !strings.Contains(out, "driver-1") {
			t.Fatalf("dispatcher at 10.3.0.10: %q %v", out, err)
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
