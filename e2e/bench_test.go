//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opsdev/ops/qemu"
)

// nanosHomeB is nanosHome for benchmarks: "" when no release is installed.
func nanosHomeB(b *testing.B) string {
	src := nanosSource()
	v, err := os.ReadFile(filepath.Join(src, "latest.txt"))
	if err != nil {
		return ""
	}
	ver := strings.TrimSpace(string(v))
	home := b.TempDir()
	if os.Symlink(filepath.Join(src, ver), filepath.Join(home, ver)) != nil ||
		os.WriteFile(filepath.Join(home, "latest.txt"), []byte(ver), 0o644) != nil {
		return ""
	}
	return home
}

// BenchmarkBoot measures, side by side, start -> exit of `ops run` for a
// static hello, and start -> first HTTP 200 for a Go server, on each
// guest, the server both on ops's default network (passt) and on QEMU's
// own (--host-loopback). Each iteration also times the QEMU command ops
// runs, started directly, just before or after (outside the timer), with
// QEMU's own user-mode network in place of passt's (bare QEMU has no
// passt): qemu-median-ms beside median-ms shows what ops itself adds, free
// of the drift between runs that this machine's noise brings. Images are
// built once before timing, as a second `ops run` would find them. The
// Linux guest boots cold here (--no-snapshot), as the bare command does;
// BenchmarkSnapshot times its restores.
func BenchmarkBoot(b *testing.B) {
	e := getEnv(b)
	homes := map[string]string{"linux": e.home, "nanos": nanosHomeB(b)}
	for _, guest := range []string{"nanos", "linux"} {
		home := homes[guest]
		if guest == "linux" {
			// As ops starts the Linux guest's QEMU (qemu.PagesSmall); the
			// setting stays for this process, so Nanos goes first.
			qemu.DisableHugePages()
		}
		port := freePorts(b, 1)
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		for _, bc := range []struct {
			name   string
			args   []string
			server bool
		}{
			{"hello-exit", []string{"run", "--guest", guest, "--no-snapshot", "./hello_static"}, false},
			{"http-first-200", []string{"run", "--guest", guest, "--no-snapshot", "./goserver", "-p", fmt.Sprintf("%d:8080", port)}, true},
			{"http-first-200-host-loopback", []string{"run", "--guest", guest, "--no-snapshot", "--host-loopback", "./goserver", "-p", fmt.Sprintf("%d:8080", port)}, true},
		} {
			b.Run(guest+"/"+bc.name, func(b *testing.B) {
				if home == "" {
					b.Skip("SKIP: no Nanos release installed")
				}
				argv := qemuLine(b, e, home, bc.args, bc.server, url) // also builds the image
				once := func(c *exec.Cmd, direct bool) time.Duration {
					t0 := time.Now()
					if bc.server {
						firstOK(b, c, url)
					} else if out, err := c.CombinedOutput(); err != nil && !direct {
						b.Fatalf("%v: %v\n%s", bc.args, err, out)
					}
					return time.Since(t0)
				}
				var opsT, qemuT []time.Duration
				b.ResetTimer()
				direct := func() {
					b.StopTimer()
					qemuT = append(qemuT, once(exec.Command(argv[0], argv[1:]...), true))
					b.StartTimer()
				}
				for i := 0; i < b.N; i++ {
					// Which of the two goes first alternates: on these
					// machines the first run of a pair is often slower.
					if i%2 == 1 {
						direct()
					}
					opsT = append(opsT, once(e.opsCmd(context.Background(), home, bc.args...), false))
					if i%2 == 0 {
						direct()
					}
				}
				b.StopTimer()
				b.ReportMetric(median(opsT), "median-ms")
				b.ReportMetric(median(qemuT), "qemu-median-ms")
			})
		}
	}
}

func median(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Microseconds()) / 1000
}

// qemuLine is the QEMU command `ops run -v` prints for args, split the
// way the shell would, made to run on its own (bareQEMU).
func qemuLine(b *testing.B, e *env, home string, args []string, server bool, url string) []string {
	c := e.opsCmd(context.Background(), home, append([]string{args[0], "-v"}, args[1:]...)...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if server {
		firstOK(b, c, url)
	} else if err := c.Run(); err != nil {
		b.Fatalf("%v: %v\n%s", args, err, stderr.String())
	}
	sc := bufio.NewScanner(&stderr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "qemu-system") {
			out, err := exec.Command("sh", "-c", "set -- "+sc.Text()+`; for a in "$@"; do printf '%s\0' "$a"; done`).Output()
			if err != nil {
				b.Fatal(err)
			}
			argv := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
			for i, a := range argv {
				// passt's end of the network: QEMU's own in its place.
				if strings.HasPrefix(a, "stream,id=n0,") {
					argv[i] = "user,id=n0"
					if server {
						argv[i] += ",hostfwd=tcp:127.0.0.1:" + url[strings.LastIndex(url, ":")+1:len(url)-1] + "-:8080"
					}
				}
			}
			return bareQEMU(argv, filepath.Join(b.TempDir(), "ch.sock"))
		}
	}
	b.Fatalf("ops run -v printed no QEMU command:\n%s", stderr.String())
	return nil
}

// firstOK starts c and waits for the first HTTP 200 from url, then stops
// c. A request that reaches QEMU's user-mode network before the guest's
// network is up stalls until QEMU retransmits the connection (seconds), so
// a request that has had no answer for 50 ms is left running and another
// goes out; one that fails fast (nothing listening yet) is retried after
// 5 ms. The first 200 counts.
func firstOK(b *testing.B, c *exec.Cmd, url string) {
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		c.Process.Signal(os.Interrupt)
		c.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ok := make(chan struct{}, 1)
	for {
		failed := make(chan struct{})
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				close(failed)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				close(failed)
				return
			}
			select {
			case ok <- struct{}{}:
			default:
			}
		}()
		select {
		case <-ok:
			return
		case <-ctx.Done():
			b.Fatalf("no HTTP 200 from %s", url)
		case <-failed:
			time.Sleep(5 * time.Millisecond)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// BenchmarkForwardLatency times one HTTP request from the host, on a new
// connection, through a port forward to a Go server in the guest: on
// ops's default network (passt) and on QEMU's own (--host-loopback), each
// guest. One request per b.N (`make bench` runs 100); the server boots
// once, before the timer. The median is what to read.
func BenchmarkForwardLatency(b *testing.B) {
	e := getEnv(b)
	homes := map[string]string{"linux": e.home, "nanos": nanosHomeB(b)}
	for _, guest := range []string{"nanos", "linux"} {
		for _, network := range []string{"passt", "host-loopback"} {
			b.Run(guest+"/"+network, func(b *testing.B) {
				home := homes[guest]
				if home == "" {
					b.Skip("SKIP: no Nanos release installed")
				}
				port := freePorts(b, 1)
				url := fmt.Sprintf("http://127.0.0.1:%d/", port)
				args := []string{"run", "--guest", guest, "./goserver", "-p", fmt.Sprintf("%d:8080", port)}
				if network == "host-loopback" {
					args = append(args, "--host-loopback")
				}
				c := e.opsCmd(context.Background(), home, args...)
				if err := c.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() {
					c.Process.Signal(os.Interrupt)
					c.Wait()
				}()
				if _, err := getUntil(url, time.Now().Add(60*time.Second)); err != nil {
					b.Fatal(err)
				}
				client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
				var d []time.Duration
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					resp, err := client.Get(url)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					d = append(d, time.Since(t0))
				}
				b.StopTimer()
				b.ReportMetric(median(d), "median-ms")
			})
		}
	}
}
