//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkInstances creates INSTANCES (default 20) instances of the Go
// HTTP server on Nanos (the Linux guest without a release) one after
// another, each answering through its own port, and reports the time to
// create them all, `ops instance list` as a whole process (median of 15),
// and each idle instance's CPU and RSS (QEMU's, over 5 s).
func BenchmarkInstances(b *testing.B) {
	e := getEnv(b)
	n := 20
	if v, err := strconv.Atoi(os.Getenv("INSTANCES")); err == nil && v > 0 {
		n = v
	}
	guest, home := "nanos", nanosHomeB(b)
	if home == "" {
		guest, home = "linux", e.home
	}
	h := b.TempDir()
	ents, _ := os.ReadDir(home)
	for _, en := range ents {
		os.Symlink(home+"/"+en.Name(), h+"/"+en.Name())
	}
	home = h
	base := freePorts(b, n)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for k := 0; k < n; k++ {
			name := fmt.Sprintf("web%d", k)
			r := e.runB(b, home, "instance", "create", "./goserver", "--guest", guest, "--name", name, "-a", "8080", "-p", fmt.Sprintf("%d:8080", base+k))
			if r.code != 0 {
				b.Fatalf("create %s: %s", name, r.stderr)
			}
		}
		for k := 0; k < n; k++ {
			if _, err := getUntil(fmt.Sprintf("http://127.0.0.1:%d/", base+k), time.Now().Add(3*time.Minute)); err != nil {
				b.Fatalf("instance %d does not answer: %v", k, err)
			}
		}
		created := time.Since(start)
		var lists []float64
		for k := 0; k < 15; k++ {
			t0 := time.Now()
			e.runB(b, home, "instance", "list")
			lists = append(lists, float64(time.Since(t0).Microseconds())/1000)
		}
		sort.Float64s(lists)
		cpu, rss := idleUsage(b, home, n)
		b.ReportMetric(created.Seconds(), "create-all-s")
		b.ReportMetric(lists[len(lists)/2], "list-median-ms")
		b.ReportMetric(cpu, "idle-cpu-%-each")
		b.ReportMetric(rss, "rss-MB-each")
		args := []string{"instance", "delete", "-f"}
		for k := 0; k < n; k++ {
			args = append(args, fmt.Sprintf("web%d", k))
		}
		e.runB(b, home, args...)
	}
}

// idleUsage is the mean CPU (percent of one core) and RSS of the
// instances' QEMU processes over 5 s.
func idleUsage(b *testing.B, home string, n int) (cpu, rssMB float64) {
	pids := qemuPids(home)
	ticks := func() (t float64) {
		for _, p := range pids {
			f := procStatFields(p)
			if len(f) > 13 {
				u, _ := strconv.ParseFloat(f[11], 64)
				s, _ := strconv.ParseFloat(f[12], 64)
				t += u + s
			}
		}
		return t
	}
	t0 := ticks()
	time.Sleep(5 * time.Second)
	used := (ticks() - t0) / 100 / 5 * 100 // clock ticks are 1/100 s
	var rss float64
	for _, p := range pids {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				rss += kb / 1024
			}
		}
	}
	if len(pids) == 0 {
		return 0, 0
	}
	return used / float64(len(pids)), rss / float64(len(pids))
}

// qemuPids are the QEMU processes whose command line names home.
func qemuPids(home string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.HasPrefix(string(cmd), "qemu-system") && strings.Contains(string(cmd), home) {
			out = append(out, pid)
		}
	}
	return out
}

// procStatFields are /proc/PID/stat's fields after the command name
// (field 3 first).
func procStatFields(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// runB runs ops for a benchmark (or a scenario a test and a benchmark share).
func (e *env) runB(_ testing.TB, home string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := e.opsCmd(ctx, home, args...)
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if c.ProcessState != nil {
		code = c.ProcessState.ExitCode()
	} else if err != nil {
		code = -1
	}
	return result{out.String(), errb.String(), code}
}
