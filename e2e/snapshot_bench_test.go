//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSnapshot measures, side by side in one loop, start -> exit of
// `ops run` for a static hello and start -> first HTTP 200 for a Go
// server: the Linux guest restored from its snapshot, the same image
// booted cold (--no-snapshot), its saving run (the snapshot removed
// before it, outside the timer) and Nanos booted cold. Medians.
func BenchmarkSnapshot(b *testing.B) {
	e := getEnv(b)
	nanos := nanosHomeB(b)
	home := b.TempDir()
	port := freePorts(b, 1)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for _, bc := range []struct {
		name   string
		prog   []string
		server bool
	}{
		{"hello-exit", []string{"./hello_static"}, false},
		{"http-first-200", []string{"./goserver", "-p", fmt.Sprintf("%d:8080", port)}, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			kinds := []struct {
				name, home string
				args       []string
				unsave     bool
			}{
				{"linux-restored", home, []string{"--guest", "linux"}, false},
				{"linux-cold", home, []string{"--guest", "linux", "--no-snapshot"}, false},
				{"linux-saving", home, []string{"--guest", "linux"}, true},
				{"nanos-cold", nanos, []string{"--guest", "nanos"}, false},
			}
			state := filepath.Join(home, "snapshots", strings.TrimPrefix(bc.prog[0], "./")+".initramfs")
			times := make([][]time.Duration, len(kinds))
			once := func(k int) {
				kd := kinds[k]
				if kd.home == "" {
					return
				}
				if kd.unsave {
					os.Remove(state + ".json")
					os.Remove(state + ".state")
				}
				c := e.opsCmd(context.Background(), kd.home, append(append([]string{"run"}, kd.args...), bc.prog...)...)
				b.StartTimer()
				t0 := time.Now()
				if bc.server {
					firstOK(b, c, url)
				} else if out, err := c.CombinedOutput(); err != nil {
					b.Fatalf("%s: %v\n%s", kd.name, err, out)
				}
				times[k] = append(times[k], time.Since(t0))
				b.StopTimer()
			}
			b.StopTimer()
			for k := range kinds { // warm-up: builds the images, saves the snapshot
				once(k)
				times[k] = nil
			}
			once(0)
			times[0] = nil
			for i := 0; i < b.N; i++ {
				for j := range kinds {
					once((i + j) % len(kinds)) // each kind first in turn
				}
			}
			for k, kd := range kinds {
				if len(times[k]) > 0 {
					b.ReportMetric(median(times[k]), kd.name+"-ms")
				}
			}
		})
	}
}

// BenchmarkSnapshotInstances starts OPS_BENCH_INSTANCES (default 20) idle
// Linux-guest instances restored from one image's snapshot, then as many
// booted cold, and reports the QEMU processes' total resident memory
// (and proportional set size) for each, once all are up.
func BenchmarkSnapshotInstances(b *testing.B) {
	e := getEnv(b)
	n := 20
	if v, err := strconv.Atoi(os.Getenv("OPS_BENCH_INSTANCES")); err == nil && v > 0 {
		n = v
	}
	for i := 0; i < b.N; i++ {
		for _, kind := range []string{"restored", "cold"} {
			home := b.TempDir()
			args := []string{"--guest", "linux", "-a", "sleep", "-a", "600000"}
			if kind == "cold" {
				args = append(args, "--no-snapshot")
			} else if r := e.runB(b, home, "run", "./hello_static", "--guest", "linux"); r.code != 0 {
				b.Fatalf("saving run: %s", r.stderr) // saves hello_static's snapshot
			}
			var pids []int
			for j := 0; j < n; j++ {
				name := fmt.Sprintf("idle%d", j)
				if r := e.runB(b, home, append([]string{"instance", "create", "./hello_static", "--name", name}, args...)...); r.code != 0 {
					b.Fatalf("create %s: %s", name, r.stderr)
				}
			}
			deadline := time.Now().Add(5 * time.Minute)
			for len(pids) < n && time.Now().Before(deadline) {
				pids = pids[:0]
				var l []instanceJSON
				json.Unmarshal([]byte(e.runB(b, home, "instance", "list", "--json").stdout), &l)
				for _, in := range l {
					if in.Status == "running" && in.QEMU > 0 {
						pids = append(pids, in.QEMU)
					}
				}
				time.Sleep(500 * time.Millisecond)
			}
			time.Sleep(3 * time.Second) // settled
			var rss, pss int64
			for _, p := range pids {
				rss += procKB(p, "status", "VmRSS:")
				pss += procKB(p, "smaps_rollup", "Pss:")
			}
			for j := 0; j < n; j++ {
				e.runB(b, home, "instance", "delete", "-f", fmt.Sprintf("idle%d", j))
			}
			b.ReportMetric(float64(rss)/1024, kind+"-rss-MiB")
			b.ReportMetric(float64(pss)/1024, kind+"-pss-MiB")
			b.ReportMetric(float64(len(pids)), kind+"-running")
		}
	}
}

// procKB reads a "Key: N kB" line of /proc/PID/file.
func procKB(pid int, file, key string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}
