//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A replicated service's published port under a steady stream of
// requests while one replica's QEMU is killed with -9: the project's
// balancer serves the port, stops choosing the dead replica, and the
// restart policy brings it back.

// killLoad is what the stream saw.
type killLoad struct {
	sent, failed int
	// lateFailed failed though they started more than a second after the
	// kill, when the balancer should long have stopped choosing the dead
	// replica.
	lateFailed int
	// lastFailure is the time from the kill to the start of the last
	// request that failed (0: none failed).
	lastFailure time.Duration
	// back is the time from the kill until the killed replica answered
	// through the port again.
	back time.Duration
	// before and answered are how many requests each replica (host name)
	// answered before the kill and after the killed one was back.
	before, answered map[string]int
	errs             []string // the first few failures
}

// lbRequest is one request's outcome in the stream.
type lbRequest struct {
	start time.Time
	host  string // the replica that answered; "" when it failed
	err   string
}

// stream sends requests to url from workers loops, each on a new
// connection, until ctx ends; the function it returns waits for the
// loops and gives every outcome.
func stream(ctx context.Context, url string, workers int) func() []lbRequest {
	var mu sync.Mutex
	var reqs []lbRequest
	var wg sync.WaitGroup
	c := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				r := lbRequest{start: time.Now()}
				resp, err := c.Get(url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("HTTP %d", resp.StatusCode)
					}
					r.host = resp.Header.Get("X-Hostname")
				}
				if err != nil {
					r.host, r.err = "", err.Error()
				}
				mu.Lock()
				reqs = append(reqs, r)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return func() []lbRequest {
		wg.Wait()
		return reqs
	}
}

// lbProject writes a project of two replicas of the Go server on one
// published port, restarted always and probed every half second.
func lbProject(tb testing.TB, e *env, name string, port int) string {
	dir := tb.TempDir()
	writeFiles(tb, dir, map[string]string{"compose.yaml": fmt.Sprintf(`name: %s
services:
  web:
    x-ops: {program: %s}
    ports: ["%d:8080"]
    deploy: {replicas: 2}
    restart: always
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://localhost:8080/"]
      interval: 500ms
      timeout: 1s
      retries: 2
      start_period: 120s
      start_interval: 200ms
`, name, e.progs["goserver"], port)})
	return dir
}

// instances reads ops instance list --json.
func instances(tb testing.TB, run func(args ...string) result) map[string]instanceJSON {
	r := run("instance", "list", "--json")
	var l []instanceJSON
	if err := json.Unmarshal([]byte(r.stdout), &l); r.code != 0 || err != nil {
		tb.Fatalf("instance list --json: exit %d %v: %s%s", r.code, err, r.stdout, r.stderr)
	}
	m := map[string]instanceJSON{}
	for _, in := range l {
		m[in.Name] = in
	}
	return m
}

// killReplica runs the scenario on a project lbProject wrote, which is
// up with both replicas healthy: a stream of requests to port for a
// second, kill -9 of the first replica's QEMU, the stream on until the
// replica is back, healthy and answering through the port, and two
// seconds more. Throughout, ops instance list and compose ps are checked:
// the other replica keeps its QEMU and runs, the killed one is running or
// restarting, and ps shows the port once.
func killReplica(tb testing.TB, run func(args ...string) result, name string, port int) killLoad {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	results := stream(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port), 2)
	first, second := name+"-web-1", name+"-web-2"
	before := instances(tb, run)
	if before[first].QEMU == 0 || before[second].QEMU == 0 {
		tb.Fatalf("replicas not running: %+v", before)
	}
	time.Sleep(time.Second)
	kill := time.Now()
	if err := syscall.Kill(before[first].QEMU, syscall.SIGKILL); err != nil {
		tb.Fatalf("kill -9 %d: %v", before[first].QEMU, err)
	}
	shared := regexp.MustCompile(fmt.Sprintf(`127\.0\.0\.1:%d->8080 \(balanced\)`, port))
	deadline := kill.Add(2 * time.Minute)
	var backAt time.Time
	for {
		now := instances(tb, run)
		k, o := now[first], now[second]
		if o.Status != "running" || o.QEMU != before[second].QEMU {
			tb.Errorf("%s: the replica not killed is %s (QEMU %d, was %d)", time.Since(kill), o.Status, o.QEMU, before[second].QEMU)
		}
		if k.Status != "running" && k.Status != "restarting" {
			tb.Errorf("%s: the killed replica is %s", time.Since(kill), k.Status)
		}
		ps := run("compose", "ps")
		if n := len(shared.FindAllString(ps.stdout, -1)); n != 1 || !regexp.MustCompile(first+`\s+web\s+(running|restarting)\s`).MatchString(ps.stdout) ||
			!regexp.MustCompile(second+`\s+web\s+running\s+healthy\s`).MatchString(ps.stdout) {
			tb.Errorf("%s: compose ps (the port %d times):\n%s%s", time.Since(kill), n, ps.stdout, ps.stderr)
		}
		if backAt.IsZero() && k.Status == "running" && k.Health == "healthy" && k.Restarts >= 1 && k.QEMU != before[first].QEMU {
			backAt = time.Now()
		}
		if !backAt.IsZero() && time.Since(backAt) > 2*time.Second || time.Now().After(deadline) || tb.Failed() {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	stop()
	reqs := results()
	if tb.Failed() {
		tb.FailNow()
	}
	if backAt.IsZero() {
		tb.Fatalf("the killed replica did not come back within 2 minutes: %+v", instances(tb, run)[first])
	}
	l := killLoad{sent: len(reqs), before: map[string]int{}, answered: map[string]int{}}
	for _, r := range reqs {
		switch {
		case r.err != "":
			l.failed++
			if len(l.errs) < 5 {
				l.errs = append(l.errs, fmt.Sprintf("+%v: %s", r.start.Sub(kill).Round(time.Millisecond), r.err))
			}
			if d := r.start.Sub(kill); d > time.Second {
				l.lateFailed++
			}
			l.lastFailure = max(l.lastFailure, r.start.Sub(kill))
		case r.host == "web-1" && l.back == 0 && r.start.After(kill):
			l.back = r.start.Sub(kill)
		}
		if r.err == "" && r.start.After(backAt) {
			l.answered[r.host]++
		}
		if r.err == "" && r.start.Before(kill) {
			l.before[r.host]++
		}
	}
	return l
}

// TestE2EComposeReplicaKilled: two replicas of a Go server share one
// published port (the project's balancer serves it); under a steady
// stream of requests, one replica's QEMU is killed with -9. The requests
// that fail all started within a second of the kill, the restart policy
// boots the replica again, both answer through the port afterwards, and
// ops instance list and compose ps are right throughout. On both guests
// in the project's network namespace, and on the Linux guest without one
// (--host-loopback: QEMU's own network, a holder in the host's serving
// the port alone).
func TestE2EComposeReplicaKilled(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		for _, mode := range []string{"namespace", "host-loopback"} {
			if mode == "host-loopback" && guest != "linux" {
				continue
			}
			t.Run(mode, func(t *testing.T) {
				l := upAndKill(t, e, home, guest, mode == "host-loopback")
				if l.lateFailed > 0 {
					t.Errorf("%d requests failed more than a second after the kill: %q", l.lateFailed, l.errs)
				}
				if l.answered["web-1"] == 0 || l.answered["web-2"] == 0 {
					t.Errorf("not both replicas answered once the killed one was back: %v", l.answered)
				}
			})
		}
	})
}

// upAndKill brings lbProject up on guest (hostLoopback: without the
// project's namespace), waits for both replicas to be healthy, runs
// killReplica, logs what the stream saw and takes the project down.
func upAndKill(tb testing.TB, e *env, home, guest string, hostLoopback bool) killLoad {
	port := freePorts(tb, 1)
	name := fmt.Sprintf("lb%d", os.Getpid()%1000)
	ce := inDir(e, lbProject(tb, e, name, port))
	run := func(args ...string) result { return ce.runB(tb, home, args...) }
	defer run("compose", "down")
	args := []string{"compose", "up", "-d", "--guest", guest}
	if hostLoopback {
		args = append(args, "--host-loopback")
	}
	r := run(args...)
	if r.code != 0 {
		tb.Fatalf("compose up -d: %s", r.stderr)
	}
	if want := fmt.Sprintf("web on 127.0.0.1:%d", port); !strings.Contains(r.stderr+r.stdout, want) {
		tb.Errorf("up did not say %q:\n%s", want, r.stderr)
	}
	waitReplicasHealthy(tb, run, name)
	l := killReplica(tb, run, name, port)
	tb.Logf("%s: %d requests, %d failed (%d more than 1 s after the kill), the last failure %v after it, the killed replica answering again %v after it; answered before the kill %v, once it was back %v; failures: %q",
		guest, l.sent, l.failed, l.lateFailed, l.lastFailure.Round(time.Millisecond), l.back.Round(time.Millisecond), l.before, l.answered, l.errs)
	return l
}

// waitReplicasHealthy waits until both replicas of the project's web
// service are running and healthy.
func waitReplicasHealthy(tb testing.TB, run func(args ...string) result, name string) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		in := instances(tb, run)
		if in[name+"-web-1"].Health == "healthy" && in[name+"-web-2"].Health == "healthy" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the replicas did not become healthy: %+v", in)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
