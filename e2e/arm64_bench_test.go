//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkBootARM64 measures, side by side, start -> exit of `ops run
// --arch arm64` for the static arm64 C hello on each guest (emulated on
// an x86 host), the QEMU command ops runs started directly (its disk
// overlay replaced by QEMU's own throwaway one), and for Nanos, when
// OPS_BENCH_ANCHOR names nanovms/ops's binary and OPS_BENCH_ANCHOR_ARM64_HOME
// an OPS_HOME whose .ops holds the same arm64 release as <version>-arm
// (nanovms/ops tells an arm64 kernel by "arm" in its path), `nanovms/ops
// run --arch arm64` of the same program. The three take turns, the first
// rotating. The Linux guest boots cold, as the bare command does.
func BenchmarkBootARM64(b *testing.B) {
	e := getEnv(b)
	dir := arm64Progs(b)
	prog := filepath.Join(dir, "hello_static")
	anchor, ahome := os.Getenv("OPS_BENCH_ANCHOR"), os.Getenv("OPS_BENCH_ANCHOR_ARM64_HOME")
	for _, guest := range []string{"nanos", "linux"} {
		b.Run(guest+"/hello-exit", func(b *testing.B) {
			var home string
			if guest == "nanos" {
				home = nanosHomeARM64(b)
			} else {
				home = linuxHomeARM64(b)
			}
			args := []string{"run", "--arch", "arm64", "--guest", guest, "--no-snapshot", prog}
			argv := qemuLine(b, e, home, args, false, "")
			tools := []struct {
				name string
				cmd  func() *exec.Cmd
			}{
				{"ops", func() *exec.Cmd { return e.opsCmd(context.Background(), home, args...) }},
				{"qemu", func() *exec.Cmd { return exec.Command(argv[0], argv[1:]...) }},
			}
			if guest == "nanos" && anchor != "" && ahome != "" {
				tools = append(tools, struct {
					name string
					cmd  func() *exec.Cmd
				}{"anchor", func() *exec.Cmd {
					c := exec.Command(anchor, "run", "--arch", "arm64", prog)
					c.Env = append(os.Environ(), "OPS_HOME="+ahome)
					return c
				}})
			}
			times := map[string][]time.Duration{}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range tools {
					t := tools[(i+j)%len(tools)]
					c := t.cmd()
					t0 := time.Now()
					out, err := c.CombinedOutput()
					d := time.Since(t0)
					if err != nil && t.name == "ops" {
						b.Fatalf("%v: %v\n%s", args, err, out)
					}
					if !strings.Contains(string(out), "hello from C") {
						b.Fatalf("%s printed no hello:\n%s", t.name, out)
					}
					times[t.name] = append(times[t.name], d)
				}
			}
			b.StopTimer()
			b.ReportMetric(median(times["ops"]), "median-ms")
			b.ReportMetric(median(times["qemu"]), "qemu-median-ms")
			if len(times["anchor"]) > 0 {
				b.ReportMetric(median(times["anchor"]), "anchor-median-ms")
			}
		})
	}
}

// bareQEMU is ops's QEMU command made to run on its own: a disk whose
// writes go to the overlay ops makes for each run (-blockdev nodes; every
// Nanos boot that does not write its image) takes QEMU's own throwaway
// overlay instead (-drive snapshot=on), as a command typed by hand would, and the channel ops serves (a
// descriptor) is a socket nobody connects to, at sock (init, finding no
// one there, powers off without reporting its exit code).
func bareQEMU(argv []string, sock string) []string {
	var out []string
	for i := 0; i < len(argv); i++ {
		if strings.HasPrefix(argv[i], "socket,id=ops0,fd=") {
			out = append(out, "socket,id=ops0,path="+sock+",server=on,wait=off")
			continue
		}
		if argv[i] != "-blockdev" || i+1 >= len(argv) {
			out = append(out, argv[i])
			continue
		}
		spec := argv[i+1]
		i++
		if strings.HasPrefix(spec, "driver=file,") && strings.Contains(spec, "-base-file,") {
			file := spec[strings.Index(spec, "filename=")+len("filename="):]
			file = strings.TrimSuffix(file, ",read-only=on")
			id := spec[strings.Index(spec, "node-name=")+len("node-name=") : strings.Index(spec, "-base-file")]
			out = append(out, "-drive", "if=none,id="+id+",format=raw,file="+file+",snapshot=on")
		}
	}
	return out
}
