//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkComposeTaxi measures the taxi example's standard compose file
// (Redis from an image in a registry on 127.0.0.1, two dispatchers) on
// each guest: `compose up -d` until every replica is healthy (images
// built and the Redis image converted beforehand, as a second up finds
// them), then the latency of trip -> passenger by name (timed inside the
// trip guest, through the project's network namespace: trip's passt
// straight to passenger's; median of 100) beside the same request from
// the host to passenger's own
// forwarded port (median of 100).
func BenchmarkComposeTaxi(b *testing.B) {
	e := getEnv(b)
	ref := redisImage(b)
	forEachGuestB(b, e, func(b *testing.B, guest, home string) {
		port := freePorts(b, 1)
		dir := taxiProject(b, map[string]string{"REDIS_IMAGE": ref, "TRIP_PORT": strconv.Itoa(port)})
		ce := inDir(e, dir)
		defer ce.runB(b, home, "compose", "down", "-v")
		// Warm-up: build the images and convert the Redis image once.
		if r := ce.runB(b, home, "compose", "up", "-d", "--guest", guest); r.code != 0 {
			b.Fatalf("compose up -d: %s", r.stderr)
		}
		ce.runB(b, home, "compose", "down", "-v")
		var ups []float64
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if r := ce.runB(b, home, "compose", "up", "-d", "--guest", guest); r.code != 0 {
				b.Fatalf("compose up -d: %s", r.stderr)
			}
			waitHealthy(b, e, home, 5)
			ups = append(ups, time.Since(start).Seconds())
			if i < b.N-1 {
				ce.runB(b, home, "compose", "down", "-v")
			}
		}
		passenger := hostPort(b, e, home, "passenger", 8080)
		byName, direct := latencies(b, port, passenger, 100)
		sort.Float64s(ups)
		b.ReportMetric(ups[len(ups)/2], "up-to-healthy-s")
		b.ReportMetric(byName, "by-name-median-ms")
		b.ReportMetric(direct, "direct-median-ms")
		b.Logf("%s: compose up -d to all 5 replicas healthy %.2f s (median of %d); trip -> passenger by name %.2f ms, host -> passenger's port %.2f ms (medians of 100)",
			guest, ups[len(ups)/2], len(ups), byName, direct)
	})
}

// composeInstance is what the benchmark reads of ops instance list --json.
type composeInstance struct {
	Name   string `json:"name"`
	Health string `json:"health_status"`
}

func composeInstances(b *testing.B, e *env, home string) []composeInstance {
	r := e.runB(b, home, "instance", "list", "--json")
	var l []composeInstance
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		b.Fatalf("instance list --json: %v %q", err, r.stdout)
	}
	return l
}

// waitHealthy waits until n instances report healthy.
func waitHealthy(b *testing.B, e *env, home string, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		healthy := 0
		for _, in := range composeInstances(b, e, home) {
			if in.Health == "healthy" {
				healthy++
			}
		}
		if healthy == n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("not all %d replicas became healthy: %+v", n, composeInstances(b, e, home))
}

// hostPort is the host port a project's service forwards to guest: one of
// the project network's host listeners (net.json in its state folder).
func hostPort(b *testing.B, e *env, home, service string, guest int) int {
	states, _ := filepath.Glob(filepath.Join(home, "compose", "*"))
	for _, st := range states {
		for _, h := range projectSpec(b, st).Host {
			if strings.HasSuffix(h.Instance, "-"+service) && h.Port == guest {
				_, port, _ := net.SplitHostPort(h.Listen)
				n, _ := strconv.Atoi(port)
				return n
			}
		}
	}
	b.Fatalf("no host port of %s:%d", service, guest)
	return 0
}

// latencies are the medians (ms) of n lookups by name inside the trip
// guest and of n direct requests to the passenger's host port.
func latencies(b *testing.B, trip, passenger, n int) (byName, direct float64) {
	c := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(url string) (*http.Response, error) {
		resp, err := c.Get(url)
		if err == nil && resp.StatusCode != 200 {
			resp.Body.Close()
			return nil, fmt.Errorf("%s: %s", url, resp.Status)
		}
		return resp, err
	}
	var in, out []float64
	for i := 0; i < n; i++ {
		resp, err := get(fmt.Sprintf("http://127.0.0.1:%d/lookup/%d", trip, i))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		us, err := strconv.ParseFloat(resp.Header.Get("X-Passenger-Micros"), 64)
		if err != nil {
			b.Fatalf("no X-Passenger-Micros: %v", resp.Header)
		}
		in = append(in, us/1000)
		start := time.Now()
		if resp, err = get(fmt.Sprintf("http://127.0.0.1:%d/passengers/%d", passenger, i)); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		out = append(out, float64(time.Since(start).Microseconds())/1000)
	}
	sort.Float64s(in)
	sort.Float64s(out)
	return in[n/2], out[n/2]
}

// BenchmarkComposeReplicaKilled runs TestE2EComposeReplicaKilled's
// scenario on each guest, in the project's network namespace: two
// replicas of a Go server on one published port, a steady stream of
// requests (two loops, each request on a new connection), kill -9 of one
// replica's QEMU. It reports the requests sent and failed, those that
// failed though they started more than a second after the kill, the time
// from the kill to the last failure (the balancer's time to stop choosing
// the dead replica), and to the killed replica answering again (restart
// policy's 1 s wait and a boot). Medians over b.N runs.
func BenchmarkComposeReplicaKilled(b *testing.B) {
	e := getEnv(b)
	forEachGuestB(b, e, func(b *testing.B, guest, home string) {
		var sent, failed, late, lastFail, back []float64
		for i := 0; i < b.N; i++ {
			l := upAndKill(b, e, home, guest, false)
			sent = append(sent, float64(l.sent))
			failed = append(failed, float64(l.failed))
			late = append(late, float64(l.lateFailed))
			lastFail = append(lastFail, float64(l.lastFailure.Microseconds())/1000)
			back = append(back, l.back.Seconds())
		}
		med := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
		b.ReportMetric(med(sent), "requests")
		b.ReportMetric(med(failed), "failed")
		b.ReportMetric(med(late), "failed-after-1s")
		b.ReportMetric(med(lastFail), "last-failure-ms")
		b.ReportMetric(med(back), "replica-back-s")
		b.Logf("%s: medians of %d runs: %.0f requests, %.0f failed, %.0f of them more than 1 s after the kill, the last failure %.0f ms after it; the killed replica answered again %.2f s after it",
			guest, b.N, med(sent), med(failed), med(late), med(lastFail), med(back))
	})
}

// forEachGuestB runs f as a sub-benchmark for each guest, with its ops
// home; Nanos is left out, saying so, when no release is installed.
func forEachGuestB(b *testing.B, e *env, f func(b *testing.B, guest, home string)) {
	homes := map[string]string{"linux": e.home, "nanos": nanosHomeB(b)}
	for _, guest := range []string{"linux", "nanos"} {
		if homes[guest] == "" {
			b.Logf("SKIP: nanos: no Nanos release installed (OPS_TEST_NANOS_HOME)")
			continue
		}
		b.Run(guest, func(b *testing.B) { f(b, guest, homes[guest]) })
	}
}
