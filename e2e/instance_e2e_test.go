//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// instanceJSON is what ops instance list --json prints for one instance.
type instanceJSON struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	QEMU     int    `json:"qemu_pid"`
	Sup      int    `json:"supervisor_pid"`
	ExitCode *int   `json:"exit_code"`
	Restarts int    `json:"restarts"`
	Health   string `json:"health_status"`
}

func listInstances(t *testing.T, e *env, home string) map[string]instanceJSON {
	t.Helper()
	r := e.run(t, home, "instance", "list", "--json")
	if r.code != 0 {
		t.Fatalf("instance list: %d %s", r.code, r.stderr)
	}
	var l []instanceJSON
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatalf("instance list --json: %v: %q", err, r.stdout)
	}
	m := map[string]instanceJSON{}
	for _, in := range l {
		m[in.Name] = in
	}
	return m
}

// redisCmd sends RESP commands and returns the raw reply, retrying while
// the server boots.
func redisCmd(addr, cmds string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	var last error
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			fmt.Fprint(c, cmds)
			buf := make([]byte, 512)
			n, err := c.Read(buf)
			c.Close()
			if n > 0 && !strings.HasPrefix(string(buf[:n]), "-LOADING") {
				return string(buf[:n]), nil
			}
			last = err
		} else {
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", last
}

// TestE2EInstanceRedisVolume: Debian's redis-server with append-only
// persistence on a volume, in the background; keys written from the host
// survive instance restart, then kill -9 of QEMU and instance start.
func TestE2EInstanceRedisVolume(t *testing.T) {
	e := getEnv(t)
	prog := debianProgram(t, "/usr/bin/redis-server", "redis-server")
	forEachGuest(t, func(t *testing.T, guest, home string) {
		home = writableHome(t, home)
		port := freePorts(t, 1)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if r := e.run(t, home, "volume", "create", "rdata", "-s", "64M", "--guest", guest); r.code != 0 {
			t.Fatalf("volume create: %s", r.stderr)
		}
		r := e.run(t, home, "instance", "create", prog, "--guest", guest, "--name", "cache", "-p", fmt.Sprintf("%d:6379", port),
			"--mounts", "rdata:/data", "-a", "--dir", "-a", "/data", "-a", "--appendonly", "-a", "yes", "-a", "--appendfsync", "-a", "always",
			"-a", "--protected-mode", "-a", "no")
		if r.code != 0 {
			t.Fatalf("instance create: %d %s %s", r.code, r.stdout, r.stderr)
		}
		t.Cleanup(func() { e.run(t, home, "instance", "delete", "-f", "cache") })
		if got, err := redisCmd(addr, "SET k kept\r\n", 90*time.Second); got != "+OK\r\n" {
			t.Fatalf("SET: %q %v\n%s", got, err, e.run(t, home, "instance", "logs", "cache").stdout)
		}
		l := listInstances(t, e, home)
		if l["cache"].Status != "running" || l["cache"].QEMU == 0 {
			t.Fatalf("list: %+v", l)
		}
		if os.Geteuid() == 0 {
			mem, cpu := cgroupLimits(l["cache"].QEMU, "/ops/")
			if n, err := strconv.ParseInt(mem, 10, 64); err != nil || n < 256<<20 || n > 8<<30 || (cpu != "100000" && cpu != "100000 100000") {
				t.Fatalf("QEMU's cgroup limits: memory %q, CPU %q; want guest RAM + 256 MiB and one core", mem, cpu)
			}
		}
		if logs := e.run(t, home, "instance", "logs", "cache").stdout; !strings.Contains(logs, "Ready to accept connections") {
			t.Fatalf("logs lack the server's banner:\n%s", logs)
		}
		if r := e.run(t, home, "instance", "restart", "cache"); r.code != 0 {
			t.Fatalf("restart: %s", r.stderr)
		}
		if got, _ := redisCmd(addr, "GET k\r\n", 90*time.Second); got != "$4\r\nkept\r\n" {
			t.Fatalf("after restart: %q", got)
		}
		// kill -9 of QEMU: the supervisor sees the guest gone; start brings it back.
		syscall.Kill(listInstances(t, e, home)["cache"].QEMU, syscall.SIGKILL)
		deadline := time.Now().Add(10 * time.Second)
		for listInstances(t, e, home)["cache"].Status == "running" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if s := listInstances(t, e, home)["cache"].Status; s != "exited" {
			t.Fatalf("after kill -9 of QEMU: %s", s)
		}
		if r := e.run(t, home, "instance", "start", "cache"); r.code != 0 {
			t.Fatalf("start: %s", r.stderr)
		}
		if got, _ := redisCmd(addr, "GET k\r\n", 90*time.Second); got != "$4\r\nkept\r\n" {
			t.Fatalf("after kill -9 and start: %q", got)
		}
		// A volume in use cannot be used twice, nor deleted.
		if r := e.run(t, home, "run", "--guest", guest, "./hello_static", "--mounts", "rdata:/data"); r.code == 0 || !strings.Contains(r.stderr, "in use") {
			t.Fatalf("second user of the volume: %d %s", r.code, r.stderr)
		}
		if r := e.run(t, home, "volume", "delete", "rdata"); r.code == 0 || !strings.Contains(r.stderr, "in use") {
			t.Fatalf("deleting a volume in use: %d %s", r.code, r.stderr)
		}
		// kill -9 of the supervisor: list says so; start recovers.
		in := listInstances(t, e, home)["cache"]
		syscall.Kill(in.Sup, syscall.SIGKILL)
		deadline = time.Now().Add(10 * time.Second)
		for processAlive(in.QEMU) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if processAlive(in.QEMU) {
			t.Fatal("QEMU outlived its supervisor")
		}
		// QEMU dies with the supervisor's thread that started it, which
		// may go a moment before the whole process has.
		for listInstances(t, e, home)["cache"].Status != "dead" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if s := listInstances(t, e, home)["cache"].Status; s != "dead" {
			t.Fatalf("after kill -9 of the supervisor: %s", s)
		}
		if r := e.run(t, home, "instance", "start", "cache"); r.code != 0 {
			t.Fatalf("start after a dead supervisor: %s", r.stderr)
		}
		if got, _ := redisCmd(addr, "GET k\r\n", 90*time.Second); got != "$4\r\nkept\r\n" {
			t.Fatalf("after the supervisor's kill -9 and start: %q", got)
		}
		qemu := listInstances(t, e, home)["cache"].QEMU
		if r := e.run(t, home, "instance", "delete", "-f", "cache"); r.code != 0 {
			t.Fatalf("delete -f: %s", r.stderr)
		}
		if processAlive(qemu) {
			t.Fatal("QEMU still runs after delete")
		}
		if _, err := os.Stat(filepath.Join(home, "instances", "cache")); !os.IsNotExist(err) {
			t.Fatalf("instance files remain: %v", err)
		}
		if r := e.run(t, home, "volume", "delete", "rdata"); r.code != 0 {
			t.Fatalf("volume delete: %s", r.stderr)
		}
	})
}

// TestE2EInstanceRestartPolicy: a program that exits 1 is brought back by
// --restart on-failure:2 twice, then stays exited; list --json follows.
func TestE2EInstanceRestartPolicy(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		home = writableHome(t, home)
		r := e.run(t, home, "instance", "create", "./hello_static", "--guest", guest, "--name", "flaky", "-a", "1", "--restart", "on-failure:2")
		if r.code != 0 {
			t.Fatalf("create: %s %s", r.stdout, r.stderr)
		}
		t.Cleanup(func() { e.run(t, home, "instance", "delete", "-f", "flaky") })
		deadline := time.Now().Add(120 * time.Second)
		var in instanceJSON
		for time.Now().Before(deadline) {
			if in = listInstances(t, e, home)["flaky"]; in.Status == "exited" {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if in.Status != "exited" || in.Restarts != 2 || in.ExitCode == nil || *in.ExitCode != 1 {
			t.Fatalf("%+v", in)
		}
		if logs := e.run(t, home, "instance", "logs", "flaky").stdout; strings.Count(logs, "hello from C, 2 args") != 3 {
			t.Fatalf("want three runs in the log:\n%s", logs)
		}
	})
}

// TestE2EInstanceOwnImage: two instances created from one program, with
// arguments of their own, each boot their own image (named after the
// instance): a start of the first after the second was created runs the
// first's arguments, not the second's.
func TestE2EInstanceOwnImage(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		home = writableHome(t, home)
		exited := func(name string, runs int) instanceJSON {
			t.Helper()
			deadline := time.Now().Add(120 * time.Second)
			var in instanceJSON
			for time.Now().Before(deadline) {
				in = listInstances(t, e, home)[name]
				logs := e.run(t, home, "instance", "logs", name).stdout
				if in.Status == "exited" && strings.Count(logs, "hello from C") == runs {
					return in
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Fatalf("%s: %+v", name, in)
			return in
		}
		for _, c := range []struct {
			name string
			args []string
		}{{"own-a", []string{"-a", "3"}}, {"own-b", []string{"-a", "4", "-a", "x"}}} {
			r := e.run(t, home, append([]string{"instance", "create", "./hello_static", "--guest", guest, "--name", c.name}, c.args...)...)
			if r.code != 0 {
				t.Fatalf("create %s: %s %s", c.name, r.stdout, r.stderr)
			}
			t.Cleanup(func() { e.run(t, home, "instance", "delete", "-f", c.name) })
		}
		if in := exited("own-b", 1); in.ExitCode == nil || *in.ExitCode != 4 {
			t.Fatalf("own-b: exit code %v, want 4 (%+v)", fmtCode(in.ExitCode), in)
		}
		exited("own-a", 1)
		if r := e.run(t, home, "instance", "start", "own-a"); r.code != 0 {
			t.Fatalf("start own-a: %s", r.stderr)
		}
		if in := exited("own-a", 2); in.ExitCode == nil || *in.ExitCode != 3 {
			t.Fatalf("own-a, started again after own-b was made: exit code %v, want 3 (%+v)", fmtCode(in.ExitCode), in)
		}
		if logs := e.run(t, home, "instance", "logs", "own-a").stdout; strings.Count(logs, "hello from C, 2 args") != 2 {
			t.Fatalf("own-a ran another's arguments:\n%s", logs)
		}
	})
}

// fmtCode is an instance's exit code as a number, or "none".
func fmtCode(c *int) string {
	if c == nil {
		return "none"
	}
	return strconv.Itoa(*c)
}

// TestE2EInstanceAndVolumeErrors: bad input is one clear line each.
func TestE2EInstanceAndVolumeErrors(t *testing.T) {
	e := getEnv(t)
	home := writableHome(t, e.home)
	os.MkdirAll(filepath.Join(home, "volumes"), 0o755)
	os.WriteFile(filepath.Join(home, "volumes", "junk:1234.raw"), []byte("not a filesystem"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"instance", "logs", "nope"}, `no instance "nope"`},
		{[]string{"instance", "stop", "nope"}, `no instance "nope"`},
		{[]string{"instance", "create", "nope-image"}, "no image nope-image"},
		{[]string{"instance", "create", "./hello_static", "--restart", "sometimes"}, `--restart "sometimes"`},
		{[]string{"volume", "create", "bad/name"}, "volume name"},
		{[]string{"volume", "create", "tiny", "-s", "1M", "--guest", "linux"}, "at least 4M"},
		{[]string{"volume", "delete", "nope"}, `no volume "nope"`},
		{[]string{"run", "--guest", "linux", "./hello_static", "--mounts", "nope:/data"}, `no volume "nope"`},
		{[]string{"run", "--guest", "linux", "./hello_static", "--mounts", "data"}, "write VOLUME:/path"},
		{[]string{"run", "--guest", "linux", "./hello_static", "--mounts", "junk:/data"}, "holds no filesystem"},
	} {
		r := e.run(t, home, tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || len(lines) != 1 {
			t.Errorf("ops %s: exit %d, stderr %q, want one line with %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
	if r := e.run(t, home, "volume", "create", "lv", "-s", "8M", "--guest", "linux"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := e.run(t, home, "volume", "create", "lv", "-s", "8M", "--guest", "linux"); r.code == 0 || !strings.Contains(r.stderr, "exists already") {
		t.Errorf("duplicate volume: %q", r.stderr)
	}
}

const fillC = `#include <stdio.h>
#include <string.h>
#include <errno.h>
int main(void) {
	char b[65536];
	memset(b, 'x', sizeof b);
	FILE *f = fopen("/data/fill", "w");
	if (!f) { perror("open"); return 2; }
	for (long n = 0;; n += sizeof b) {
		if (fwrite(b, 1, sizeof b, f) != sizeof b || fflush(f)) {
			printf("full after %ld KiB: %s\n", n / 1024, strerror(errno));
			return 1;
		}
	}
}
`

// TestE2EVolumeFull: a program filling a volume sees ENOSPC, and ops
// names the volume that is full.
func TestE2EVolumeFull(t *testing.T) {
	e := getEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"fill.c": fillC})
	if err := run(dir, "gcc", "-O2", "-static", "-o", "fill", "fill.c"); err != nil {
		t.Fatal(err)
	}
	forEachGuest(t, func(t *testing.T, guest, home string) {
		home = writableHome(t, home)
		if r := e.run(t, home, "volume", "create", "small", "-s", "8M", "--guest", guest); r.code != 0 {
			t.Fatal(r.stderr)
		}
		r := inDir(e, dir).run(t, home, "run", "--guest", guest, "./fill", "--mounts", "small:/data")
		if r.code != 1 || !strings.Contains(r.stdout, "No space left on device") || !strings.Contains(r.stderr, "ops: volume small is full") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
}

// cgroupLimits reads the memory limit and the CPU quota of the cgroups
// pid is in: cgroup v2 (memory.max, cpu.max) or v1.
func cgroupLimits(pid int, within string) (mem, cpu string) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	read := func(p string) string {
		v, _ := os.ReadFile(p)
		return strings.TrimSpace(string(v))
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 || !strings.Contains(f[2], within) {
			continue
		}
		switch ctl := strings.Split(f[1], ","); {
		case f[1] == "":
			mem, cpu = read("/sys/fs/cgroup"+f[2]+"/memory.max"), read("/sys/fs/cgroup"+f[2]+"/cpu.max")
		case slices.Contains(ctl, "memory"):
			mem = read("/sys/fs/cgroup/memory" + f[2] + "/memory.limit_in_bytes")
		case slices.Contains(ctl, "cpu"):
			cpu = read("/sys/fs/cgroup/cpu" + f[2] + "/cpu.cfs_quota_us")
		}
	}
	return mem, cpu
}
