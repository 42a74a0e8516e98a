//go:build e2e

package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// BenchmarkOCIRuntimeDocker measures, side by side in one run, whole
// processes start -> exit of the same static hello (exit code 3): docker
// run --rm --runtime ops of its image, docker run --rm of the same image
// with runc (Docker's default runtime), and ops run of the same program
// (the Linux guest both restored from its snapshot, as ops run does by
// default, and booted cold, as the runtime boots it: a container's image
// is its own). Docker's daemon runs in a network namespace of the test's
// own, and docker's commands are started inside it with nsenter (a few
// ms); containers are on Docker's default bridge, ops run on its own
// user-mode network (passt), started on the host as users do. The order of the commands rotates from one round to the next.
// Medians in ms, of OCIRUNS rounds in make bench (15 by default).
func BenchmarkOCIRuntimeDocker(b *testing.B) {
	e := getEnv(b)
	homes := map[string]string{"linux": e.home, "nanos": nanosHomeB(b)}
	for _, guest := range []string{"nanos", "linux"} {
		b.Run(guest+"/hello-exit", func(b *testing.B) {
			home := homes[guest]
			if home == "" {
				b.Skip("SKIP: no Nanos release installed")
			}
			d := newDocker(b, e, guest, home)
			d.importProgram("ops-e2e-hello:1", e.progs["hello_static"], `["/hello_static","3"]`)
			nsenter, err := exec.LookPath("nsenter")
			if err != nil {
				b.Skip("SKIP: no nsenter")
			}
			docker := func(args ...string) *exec.Cmd {
				return exec.Command(nsenter, append([]string{"--net=/run/netns/" + d.ns, d.client, "-H", "unix://" + d.sock}, args...)...)
			}
			opsRun := func(args ...string) *exec.Cmd {
				return e.opsCmd(context.Background(), home, append([]string{"run", "--guest", guest}, args...)...)
			}
			cases := []struct {
				name string
				cmd  func() *exec.Cmd
			}{
				{"docker-ops", func() *exec.Cmd { return docker("run", "--rm", "--runtime", "ops", "ops-e2e-hello:1") }},
				{"docker-runc", func() *exec.Cmd { return docker("run", "--rm", "ops-e2e-hello:1") }},
				{"ops-run", func() *exec.Cmd { return opsRun("./hello_static", "-a", "3") }},
			}
			if guest == "linux" {
				cases = append(cases, struct {
					name string
					cmd  func() *exec.Cmd
				}{"ops-run-cold", func() *exec.Cmd { return opsRun("--no-snapshot", "./hello_static", "-a", "3") }})
			}
			once := func(c *exec.Cmd) time.Duration {
				t0 := time.Now()
				out, err := c.CombinedOutput()
				took := time.Since(t0)
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), "hello from C, 2 args") {
					b.Fatalf("%v: %v, want exit 3\n%s", c.Args, err, out)
				}
				return took
			}
			for _, c := range cases { // ops run's image built, Docker's caches warm
				once(c.cmd())
			}
			times := map[string][]time.Duration{}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range cases {
					c := cases[(i+j)%len(cases)]
					times[c.name] = append(times[c.name], once(c.cmd()))
				}
			}
			b.StopTimer()
			for _, c := range cases {
				b.ReportMetric(median(times[c.name]), c.name+"-median-ms")
			}
		})
	}
}
