//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Real programs nobody here wrote, from Debian, configured as a user
// would: the folders they need in Dirs, no hand-made /etc files, no
// listed libraries. `make test-deps` installs them.

// debianProgram finds a program installed from a Debian package, or skips
// saying how to get it.
func debianProgram(t *testing.T, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("SKIP: %s is not installed (apt-get install %s, or 'make test-deps')", path, pkg)
	}
	return path
}

// writeFiles writes name -> contents under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// inDir runs ops from dir (relative Files and Dirs start there).
func inDir(e *env, dir string) *env {
	c := *e
	c.dir = dir
	return &c
}

// TestE2ERealWebServer: lighttpd drops privileges to nobody (it looks the
// user and group up in /etc/passwd and /etc/group) and serves a file. Its
// modules are loaded by names in its own configuration: their folder goes
// in Dirs, as the README says.
func TestE2ERealWebServer(t *testing.T) {
	e := getEnv(t)
	prog := debianProgram(t, "/usr/sbin/lighttpd", "lighttpd")
	forEachGuest(t, func(t *testing.T, guest, home string) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"site/index.html": "hello from lighttpd\n",
			"lighttpd.conf": `server.document-root = "/site"
server.port = 8080
server.username = "nobody"
server.groupname = "nogroup"
server.errorlog = "/dev/stderr"
index-file.names = ("index.html")
`,
			"config.json": `{"Dirs": ["site", "/usr/lib/lighttpd"], "Files": ["lighttpd.conf"], "Args": ["-D", "-f", "/lighttpd.conf"]}`,
		})
		port := freePorts(t, 1)
		stop := startServer(t, inDir(e, dir), home, "run", "--guest", guest, "-c", "config.json", prog, "-p", fmt.Sprintf("%d:8080", port))
		body, err := getUntil(fmt.Sprintf("http://127.0.0.1:%d/", port), time.Now().Add(90*time.Second))
		if err != nil || body != "hello from lighttpd\n" {
			code, out := stop()
			t.Fatalf("GET /: %q, %v (ops exit %d)\n%s", body, err, code, out)
		}
	})
}

// TestE2ERealCache: memcached switches to nobody (-u) and answers set and
// get from the host.
func TestE2ERealCache(t *testing.T) {
	e := getEnv(t)
	prog := debianProgram(t, "/usr/bin/memcached", "memcached")
	forEachGuest(t, func(t *testing.T, guest, home string) {
		port := freePorts(t, 1)
		stop := startServer(t, e, home, "run", "--guest", guest, prog, "-a", "-u", "-a", "nobody", "-a", "-p", "-a", "11211", "-a", "-U", "-a", "0",
			"-p", fmt.Sprintf("%d:11211", port))
		var got string
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) && !strings.Contains(got, "VALUE k 0 5\r\nhello\r\nEND") {
			got = memcachedSetGet(fmt.Sprintf("127.0.0.1:%d", port))
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(got, "VALUE k 0 5\r\nhello\r\nEND") {
			code, out := stop()
			t.Fatalf("set/get: %q (ops exit %d)\n%s", got, code, out)
		}
	})
}

func memcachedSetGet(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprint(c, "set k 0 0 5\r\nhello\r\nget k\r\n")
	var sb strings.Builder
	r := bufio.NewReader(c)
	for !strings.HasSuffix(sb.String(), "END\r\n") {
		line, err := r.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			break
		}
	}
	return sb.String()
}

// TestE2ERealDatabase: the sqlite3 CLI creates a database file beside
// itself, writes to it and reads it back.
func TestE2ERealDatabase(t *testing.T) {
	e := getEnv(t)
	prog := debianProgram(t, "/usr/bin/sqlite3", "sqlite3")
	forEachGuest(t, func(t *testing.T, guest, home string) {
		r := e.run(t, home, "run", "--guest", guest, prog, "-a", "/app.db", "-a",
			"create table t(x); insert into t values (21); insert into t select x from t; select sum(x) * 1 from t;")
		if r.code != 0 || !strings.Contains(r.stdout, "42\n") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestE2ERealInterpreter: python3 with only its standard library folder in
// Dirs imports ssl, sqlite3 and ctypes (their extension modules' libraries
// come with the image), verifies TLS with the CA bundle, and looks up its
// own host name in under a second.
func TestE2ERealInterpreter(t *testing.T) {
	e := getEnv(t)
	prog := debianProgram(t, "/usr/bin/python3", "python3")
	std, _ := filepath.Glob("/usr/lib/python3.*/os.py")
	if len(std) == 0 {
		t.Skip("SKIP: no python3 standard library in /usr/lib")
	}
	script := `import ssl, sqlite3, ctypes, socket, time
t = time.monotonic(); addr = socket.gethostbyname(socket.gethostname()); took = time.monotonic() - t
ctx = ssl.create_default_context()
print("ssl", len(ctx.get_ca_certs()) > 0 or ctx.cert_store_stats()["x509_ca"] > 0, "sqlite", sqlite3.connect(":memory:").execute("select 6*7").fetchone()[0],
      "ctypes", ctypes.sizeof(ctypes.c_long), "host", socket.gethostname(), addr, "fast" if took < 1 else "slow %.2fs" % took)`
	forEachGuest(t, func(t *testing.T, guest, home string) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"config.json": fmt.Sprintf(`{"Dirs": [%q], "Args": ["-c", %q]}`, filepath.Dir(std[0]), script)})
		r := inDir(e, dir).run(t, home, "run", "--guest", guest, "-c", "config.json", "-i", "py-e2e", prog)
		if r.code != 0 || !strings.Contains(r.stdout, "ssl True sqlite 42 ctypes 8 host py-e2e 10.0.2.15 fast") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
}

const goSurroundings = `package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"os/user"
)

func main() {
	pool, err := x509.SystemCertPool()
	if err != nil {
		fmt.Println("certs:", err)
		os.Exit(1)
	}
	u, err := user.Current()
	if err != nil {
		fmt.Println("user:", err)
		os.Exit(1)
	}
	host, _ := os.Hostname()
	wd, _ := os.Getwd()
	fmt.Printf("certs %v user %s uid %s home %s host %s pwd %s HOME=%s PATH=%s\n", len(pool.Subjects()) > 0, u.Username, u.Uid, u.HomeDir, host, wd, os.Getenv("HOME"), os.Getenv("PATH"))
}
`

// TestE2EGoSurroundings: a Go program finds the CA bundle, its user, its
// host name and the usual environment, the same on both guests.
func TestE2EGoSurroundings(t *testing.T) {
	e := getEnv(t)
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err != nil {
		t.Skip("SKIP: the host has no CA bundle (apt-get install ca-certificates)")
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"main.go": goSurroundings, "go.mod": "module surroundings\n\ngo 1.22\n"})
	if err := run(dir, "go", "build", "-o", "surroundings", "."); err != nil {
		t.Fatal(err)
	}
	want := "certs true user root uid 0 home / host surroundings pwd / HOME=/ PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
	forEachGuest(t, func(t *testing.T, guest, home string) {
		r := inDir(e, dir).run(t, home, "run", "--guest", guest, "./surroundings")
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("exit %d\nstdout: %q\nwant:   %q\nstderr: %s", r.code, r.stdout, want, r.stderr)
		}
	})
}

const writeC = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int check(const char *p) {
	size_t n = 10 << 20;
	char *a = malloc(n), *b = malloc(n);
	for (size_t i = 0; i < n; i++) a[i] = (char)(i * 7 + 3);
	FILE *f = fopen(p, "w");
	if (!f || fwrite(a, 1, n, f) != n || fclose(f)) { perror(p); return 1; }
	f = fopen(p, "r");
	if (!f || fread(b, 1, n, f) != n || memcmp(a, b, n)) { printf("%s: read back differs\n", p); return 1; }
	fclose(f);
	printf("%s: 10 MiB written and read back\n", p);
	return 0;
}
int main(void) { return check("/tmp/big") | check("/big"); }
`

// TestE2EWriteRoom: a program writes 10 MiB to /tmp and beside itself and
// reads it back. On Nanos this needs the root filesystem's free space
// (and the log space the kernel claims before it writes).
func TestE2EWriteRoom(t *testing.T) {
	e := getEnv(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"w.c": writeC})
	if out, err := exec.Command("gcc", "-O2", "-static", "-o", filepath.Join(dir, "writer"), filepath.Join(dir, "w.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	forEachGuest(t, func(t *testing.T, guest, home string) {
		r := inDir(e, dir).run(t, home, "run", "--guest", guest, "./writer")
		if r.code != 0 || strings.Count(r.stdout, "10 MiB written and read back") != 2 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestE2EArgv0: busybox, a multi-call program, runs the applet its argv[0]
// names (Argv0 in config.json).
func TestE2EArgv0(t *testing.T) {
	e := getEnv(t)
	prog := debianProgram(t, "/bin/busybox", "busybox")
	forEachGuest(t, func(t *testing.T, guest, home string) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"config.json": `{"Argv0": "echo", "Args": ["multi-call", "works"]}`})
		r := inDir(e, dir).run(t, home, "run", "--guest", guest, "-c", "config.json", prog)
		if r.code != 0 || !strings.Contains(r.stdout, "multi-call works\n") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestE2EQEMUSandboxed: QEMU runs under its seccomp sandbox on both
// guests (Seccomp: 2 is filter mode), unless RunConfig.Sandbox is false,
// and, when ops runs as root, as nobody (or the user who ran sudo); the
// guest still serves HTTP through its forward.
func TestE2EQEMUSandboxed(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		for _, tc := range []struct {
			config string
			want   string
		}{
			{`{}`, "2"},
			{`{"RunConfig": {"Sandbox": false}}`, "0"},
			{`{"RunConfig": {"HostLoopback": true}}`, "2"},
		} {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"config.json": tc.config})
			port := freePorts(t, 1)
			stop := startServer(t, inDir(e, e.dir), home, "run", "--guest", guest, "-c", filepath.Join(dir, "config.json"), "./goserver", "-p", fmt.Sprintf("%d:8080", port))
			if _, err := getUntil(fmt.Sprintf("http://127.0.0.1:%d/", port), time.Now().Add(90*time.Second)); err != nil {
				code, out := stop()
				t.Fatalf("%s: no answer: %v (exit %d)\n%s", tc.config, err, code, out)
			}
			var seccomp, uid string
			pid := qemuForwarding(port)
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "Seccomp:"); ok {
					seccomp = strings.TrimSpace(v)
				}
				if v, ok := strings.CutPrefix(l, "Uid:"); ok {
					uid = strings.Join(strings.Fields(v), " ") // real, effective, saved, filesystem
				}
			}
			stop()
			if seccomp != tc.want {
				t.Fatalf("%s: Seccomp %q, want %q", tc.config, seccomp, tc.want)
			}
			if os.Geteuid() == 0 && os.Getenv("SUDO_UID") == "" && uid != "65534 65534 65534 65534" {
				t.Fatalf("%s: QEMU's Uid: %q, want nobody's", tc.config, uid)
			}
		}
	})
}

// qemuForwarding is the QEMU process of the run that forwards host port
// to guest port 8080: on QEMU's own network the forward is in its command
// line; on passt's it is in passt's, and QEMU is passt's sibling.
func qemuForwarding(port int) int {
	for _, pid := range allQEMU() {
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmd), fmt.Sprintf("%d-:8080", port)) {
			return pid
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		cmd, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		args := strings.Split(string(cmd), "\x00")
		if filepath.Base(args[0]) != "passt" || !slices.Contains(args, fmt.Sprintf("127.0.0.1/%d:8080", port)) {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		s := string(b)
		var state string
		var ppid int
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			fmt.Sscanf(s[i+2:], "%s %d", &state, &ppid)
		}
		if kids := qemuChildren(ppid); len(kids) > 0 {
			return kids[0]
		}
	}
	return 0
}

// allQEMU lists every QEMU process on the machine.
func allQEMU() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil {
			continue
		}
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.HasPrefix(string(cmd), "qemu-system") {
			out = append(out, pid)
		}
	}
	return out
}
