package cmd_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nanosHomeB is nanosHome for benchmarks: "" when no release is installed.
func nanosHomeB(b *testing.B) string {
	src := os.Getenv("OPS_TEST_NANOS_HOME")
	if src == "" {
		h, _ := os.UserHomeDir()
		src = filepath.Join(h, ".ops")
	}
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
// guest. Images are built once before timing (as a second `ops run` would
// find them).
func BenchmarkBoot(b *testing.B) {
	e := getEnv(b)
	homes := map[string]string{"linux": e.home, "nanos": nanosHomeB(b)}
	for _, guest := range []string{"nanos", "linux"} {
		home := homes[guest]
		b.Run(guest+"/hello-exit", func(b *testing.B) {
			if home == "" {
				b.Skip("SKIP: no Nanos release installed")
			}
			args := []string{"run", "--guest", guest, "./hello_static"}
			runOps(b, e, home, args) // build the image
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runOps(b, e, home, args)
			}
		})
		b.Run(guest+"/http-first-200", func(b *testing.B) {
			if home == "" {
				b.Skip("SKIP: no Nanos release installed")
			}
			port := freePorts(b, 1)
			args := []string{"run", "--guest", guest, "./goserver", "-p", fmt.Sprintf("%d:8080", port)}
			url := fmt.Sprintf("http://127.0.0.1:%d/", port)
			firstOK(b, e, home, args, url) // build the image
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				firstOK(b, e, home, args, url)
			}
		})
	}
}

func runOps(b *testing.B, e *env, home string, args []string) {
	c := e.opsCmd(context.Background(), home, args...)
	if out, err := c.CombinedOutput(); err != nil {
		b.Fatalf("ops %v: %v\n%s", args, err, out)
	}
}

func firstOK(b *testing.B, e *env, home string, args []string, url string) {
	c := e.opsCmd(context.Background(), home, args...)
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		c.Process.Signal(os.Interrupt)
		c.Wait()
	}()
	client := http.Client{Timeout: 150 * time.Millisecond}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("no HTTP 200 from %s", url)
}
