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

// TestE2EShareFolder: a host folder named in --mounts (as nanovms/ops
// takes a Mounts entry that names a folder) is shared with the guest,
// through virtio-9p with Nanos and virtio-fs with the Linux guest:
// Debian's redis-server writes its data there, and a second run reads it
// back.
func TestE2EShareFolder(t *testing.T) {
	e := getEnv(t)
	prog := debianProgram(t, "/usr/bin/redis-server", "redis-server")
	forEachGuest(t, func(t *testing.T, guest, home string) {
		dir := t.TempDir()
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

// TestE2EShareFolderLinux: the Linux guest reads what the host put in a
// shared folder, what it writes there is the host's at once, as the
// folder's owner's (virtiofsd acts as the owner), and a read-only share
// refuses writes. No snapshot is saved for a VM with shares (a vhost-user
// device cannot be), and no virtiofsd is left once ops has returned.
func TestE2EShareFolderLinux(t *testing.T) {
	e := getEnv(t)
	prog := debianProgram(t, "/bin/busybox", "busybox")
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} { // the owner's virtiofsd goes through them
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rw, ro := filepath.Join(base, "rw"), filepath.Join(base, "ro")
	writeFiles(t, rw, map[string]string{"from-host": "host line\n"})
	writeFiles(t, ro, map[string]string{"conf": "read-only line\n"})
	owner := os.Getuid()
	if owner == 0 {
		owner = 1000
		for _, d := range []string{rw, ro} {
			if err := os.Chown(d, owner, owner); err != nil {
				t.Fatal(err)
			}
		}
	}
	script := `read l < /data/from-host && echo "guest read: $l"; read l < /conf/conf && echo "guest read: $l"; ` +
		`echo guest line > /data/from-guest && echo wrote; echo x > /conf/new || echo "refused"`
	r := e.run(t, e.home, "run", "--guest", "linux", "-i", "share-files", prog, "-a", "sh", "-a", "-c", "-a", script, "--mounts", rw+":/data", "--mounts", ro+":/conf:ro")
	for _, want := range []string{"guest read: host line\n", "guest read: read-only line\n", "wrote\n", "Read-only file system", "refused\n"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Fatalf("exit %d, no %q\nstdout: %s\nstderr: %s", r.code, want, r.stdout, r.stderr)
		}
	}
	b, err := os.ReadFile(filepath.Join(rw, "from-guest"))
	if err != nil || string(b) != "guest line\n" {
		t.Fatalf("the host reads %q, %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(rw, "from-guest")); err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(owner) {
		t.Fatalf("the guest's file is not the folder owner's (%d): %v %+v", owner, err, st.Sys())
	}
	if _, err := os.Stat(filepath.Join(ro, "new")); !os.IsNotExist(err) {
		t.Fatalf("a file in the read-only share: %v", err)
	}
	if snaps, _ := filepath.Glob(filepath.Join(e.home, "snapshots", "share-files*")); len(snaps) > 0 {
		t.Fatalf("a snapshot of a VM with shares: %v", snaps)
	}
	if out, _ := exec.Command("pgrep", "-f", "virtiofsd.*source="+rw).Output(); len(out) > 0 {
		t.Fatalf("virtiofsd left running: %s", out)
	}
}
