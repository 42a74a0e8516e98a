//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EShareFolder: a host folder named in --mounts (as nanovms/ops
// takes a Mounts entry that names a folder) is shared with a Nanos guest
// through virtio-9p: Debian's redis-server writes its data there, and a
// second run reads it back; the Linux guest, whose kernel has no 9p,
// refuses the folder in one line.
func TestE2EShareFolder(t *testing.T) {
	e := getEnv(t)
	prog := debianProgram(t, "/usr/bin/redis-server", "redis-server")
	forEachGuest(t, func(t *testing.T, guest, home string) {
		dir := t.TempDir()
		if guest == "linux" {
			r := e.run(t, home, "run", "--guest", guest, "./hello_static", "--mounts", dir+":/data")
			if r.code == 0 || !strings.Contains(r.stderr, "which the linux guest cannot mount") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Fatalf("exit %d, want one line refusing the folder\n%s", r.code, r.stderr)
			}
			return
		}
		for i, cmds := range []struct{ send, want string }{
			{"SET k shared\r\nSAVE\r\n", "+OK\r\n+OK\r\n"},
			{"GET k\r\n", "$6\r\nshared\r\n"},
		} {
			port := freePorts(t, 1)
			stop := startServer(t, e, home, "run", "--guest", guest, prog, "-p", fmt.Sprintf("%d:6379", port), "--mounts", dir+":/data",
				"-a", "--dir", "-a", "/data", "-a", "--protected-mode", "-a", "no")
			got, err := redisCmd(fmt.Sprintf("127.0.0.1:%d", port), cmds.send, 90*time.Second)
			code, out := stop()
			if got != cmds.want {
				t.Fatalf("run %d: %q, want %q (%v; ops exit %d)\n%s", i, got, cmds.want, err, code, out)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "dump.rdb")); err != nil {
			t.Fatalf("the guest's data is not in the host folder: %v", err)
		}
	})
}
