//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildTool is one command timed in BenchmarkBuildProcess: ops, a plain
// copy of the same bytes, or nanovms/ops.
type buildTool struct {
	name string
	cmd  func(out string) *exec.Cmd // out: a fresh name for this run
	out  func(out string) string    // what the run wrote, removed afterwards
}

// BenchmarkBuildProcess times `ops build` as a user sees it: the whole
// process, each run writing a fresh image (so nothing is reused). Beside
// it, in the same rounds, a `cp` of the same program (of the Dirs tree for
// python3), and nanovms/ops when OPS_BENCH_ANCHOR names its binary. Each
// round runs every tool once, the one going first rotating. Two phases:
// a `sync` before every run (no run pays for the previous one's
// writeback), then back-to-back runs without one, as repeated builds go.
// One round per b.N, after a warm-up round: run it with -benchtime Nx,
// N >= 15 (`make bench` runs 21); smaller b.N only warms up.
func BenchmarkBuildProcess(b *testing.B) {
	e := getEnv(b)
	home := nanosHomeB(b)
	if home == "" {
		b.Skip("SKIP: no Nanos release installed")
	}
	anchor := os.Getenv("OPS_BENCH_ANCHOR")
	var ahome string
	if anchor != "" {
		// nanovms/ops keeps its home in $OPS_HOME/.ops.
		ahome = b.TempDir()
		if err := os.Symlink(home, filepath.Join(ahome, ".ops")); err != nil {
			b.Fatal(err)
		}
	}
	py, pyLib := pythonTree()
	pyConf := filepath.Join(b.TempDir(), "python.json")
	if err := os.WriteFile(pyConf, []byte(fmt.Sprintf(`{"Dirs": [%q]}`, pyLib)), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		args    []string // ops build's arguments, without -i
		cpSrc   string
		skipWhy string
	}{
		{"goserver", []string{e.progs["goserver"]}, e.progs["goserver"], ""},
		{"python3-stdlib", []string{py, "-c", pyConf}, pyLib, "no python3 with its standard library in /usr/lib"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.cpSrc == "" {
				b.Skip("SKIP: " + bc.skipWhy)
			}
			scratch := b.TempDir()
			tools := []buildTool{
				{"ops", func(out string) *exec.Cmd {
					c := exec.Command(e.ops, append([]string{"build", "-i", out}, bc.args...)...)
					// OPS_HOME names the folder holding .ops: opsHomeEnv
					// makes one for home, so ops finds the Nanos release.
					c.Env = append(os.Environ(), opsHomeEnv(home))
					return c
				}, func(out string) string { return filepath.Join(home, "images", out) }},
				{"cp", func(out string) *exec.Cmd {
					return exec.Command("cp", "-r", bc.cpSrc, filepath.Join(scratch, out))
				}, func(out string) string { return filepath.Join(scratch, out) }},
			}
			if anchor != "" {
				tools = append(tools, buildTool{"anchor", func(out string) *exec.Cmd {
					c := exec.Command(anchor, append([]string{"build", "-i", out}, bc.args...)...)
					c.Env = append(os.Environ(), "OPS_HOME="+ahome)
					return c
				}, func(out string) string { return filepath.Join(home, "images", out) }})
			}
			times := map[string][]time.Duration{}
			seq := 0
			run := func(t buildTool, synced bool) time.Duration {
				seq++
				out := fmt.Sprintf("bench-%s-%d", t.name, seq)
				c := t.cmd(out)
				if synced {
					syscall.Sync()
				}
				t0 := time.Now()
				msg, err := c.CombinedOutput()
				d := time.Since(t0)
				if err != nil {
					b.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, msg)
				}
				// Every tool builds a Nanos image where the benchmark looks
				// for it (a Linux-guest fallback would say so and put it
				// elsewhere).
				if _, err := os.Stat(t.out(out)); err != nil || strings.Contains(string(msg), "guest: linux") {
					b.Fatalf("%s wrote no Nanos image at %s: %v\n%s", strings.Join(c.Args, " "), t.out(out), err, msg)
				}
				if synced {
					removeOutput(t.out(out))
				}
				return d
			}
			for _, t := range tools {
				run(t, true) // warm-up: caches, the ops home, the page cache
			}
			if b.N < 15 {
				// The testing package's first call, with b.N = 1: the
				// warm-up is all it needs (run with -benchtime 15x or more).
				return
			}
			b.ResetTimer()
			for _, synced := range []bool{true, false} {
				phase := "sync"
				if !synced {
					phase = "b2b"
				}
				for i := 0; i < b.N; i++ {
					for j := range tools {
						t := tools[(i+j)%len(tools)]
						times[t.name+"-"+phase] = append(times[t.name+"-"+phase], run(t, synced))
					}
				}
				if !synced {
					// Back-to-back outputs stay until the phase ends, as a
					// user's repeated builds leave them.
					for k := 1; k <= seq; k++ {
						for _, t := range tools {
							removeOutput(t.out(fmt.Sprintf("bench-%s-%d", t.name, k)))
						}
					}
					syscall.Sync()
				}
			}
			b.StopTimer()
			med := map[string]float64{}
			for k, d := range times {
				med[k] = median(d)
				b.ReportMetric(med[k], k+"-ms")
			}
			for _, phase := range []string{"sync", "b2b"} {
				line := fmt.Sprintf("%s, %d runs each: ops %.1f ms, cp %.1f ms (ops/cp %.2f)",
					phase, b.N, med["ops-"+phase], med["cp-"+phase], med["ops-"+phase]/med["cp-"+phase])
				if anchor != "" {
					line += fmt.Sprintf(", nanovms/ops %.1f ms (ops/nanovms %.2f)", med["anchor-"+phase], med["ops-"+phase]/med["anchor-"+phase])
				}
				b.Log(line)
			}
		})
	}
}

// removeOutput removes what one run wrote: an image with its key (ops's
// and nanovms/ops's), or a copy.
func removeOutput(p string) {
	os.RemoveAll(p)
	os.Remove(filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".key"))
}

// pythonTree is the host's python3 and its standard library folder
// (/usr/lib/python3.N for the version /usr/bin/python3 runs), or "" when
// there is none.
func pythonTree() (prog, lib string) {
	real, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		return "", ""
	}
	lib = filepath.Join("/usr/lib", filepath.Base(real))
	if _, err := os.Stat(filepath.Join(lib, "os.py")); err != nil {
		return "", ""
	}
	return "/usr/bin/python3", lib
}
