//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsdev/ops/internal/proc"
)

// The fault campaign: each kind of command that writes into the ops home
// is killed with SIGKILL at a moment drawn from its seed, then run again
// in full. The second run must succeed, find nothing half-made, and
// leave no temporary file of a dead writer anywhere in the home.

// tempName is a temporary of ops's writers: .BASE.tmp-PID-START-RANDOM;
// oldTempName, one of an ops from before (os.CreateTemp's digits).
var (
	tempName    = regexp.MustCompile(`^\..+\.tmp-([0-9]+)-([0-9]+)-[0-9a-f]+$`)
	oldTempName = regexp.MustCompile(`^\.(.+\.tmp|get|add|pull|release|download|from-[a-z]+)-[0-9]+$`)
)

// deadTemps lists the temporaries under home whose writers are dead, and
// any older-style temporary name (os.CreateTemp's random digits).
func deadTemps(t *testing.T, home string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == home {
			return nil
		}
		name := d.Name()
		if m := tempName.FindStringSubmatch(name); m != nil {
			pid, _ := strconv.Atoi(m[1])
			start, _ := strconv.ParseUint(m[2], 10, 64)
			if !proc.Alive(pid, start) {
				out = append(out, p)
			}
			return filepath.SkipDir
		}
		if oldTempName.MatchString(name) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// campaign is one kind of command under kill -9.
type campaign struct {
	seeds int
	env   []string
	args  []string
	// before, when set, undoes what a full run made, before each run
	// that is to be killed.
	before func(t *testing.T)
	// after runs after each killed run (and its kill), with the seed: it
	// runs the command again in full and checks what it finds.
	after func(t *testing.T, seed int)
}

// timed runs args once in full and returns how long it took.
func timed(t *testing.T, e *env, home string, env []string, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	mustOK(t, e, home, env, args...)
	return time.Since(start)
}

// killedRun starts ops with args and kills it with SIGKILL after delay
// (or lets it finish first); it reports whether the kill came first.
func killedRun(t *testing.T, e *env, home string, env []string, delay time.Duration, args ...string) bool {
	t.Helper()
	c := e.opsCmd(t.Context(), home, args...)
	c.Env = append(c.Env, env...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
		return false
	case <-time.After(delay):
		syscall.Kill(c.Process.Pid, syscall.SIGKILL)
		<-done
		return true
	}
}

// run kills the command at a moment drawn from each seed in [0, 1.2 x the
// time a full run takes, once warm), then checks with after.
func (c campaign) run(t *testing.T, e *env, home string) {
	t.Helper()
	before := func() {
		if c.before != nil {
			c.before(t)
		}
	}
	var span time.Duration
	for range 2 {
		before()
		span = timed(t, e, home, c.env, c.args...)
	}
	for seed := 1; seed <= c.seeds; seed++ {
		before()
		r := rand.New(rand.NewPCG(uint64(seed), 29))
		delay := time.Duration(r.Int64N(int64(span) * 6 / 5))
		killed := killedRun(t, e, home, c.env, delay, c.args...)
		t.Logf("seed %d: killed after %v (a full run takes %v): %v", seed, delay.Round(time.Millisecond), span.Round(time.Millisecond), killed)
		c.after(t, seed)
		if left := deadTemps(t, home); len(left) > 0 {
			t.Fatalf("seed %d: a dead writer's temporaries are left: %v", seed, left)
		}
	}
}

// padFiles writes n files of size random bytes under dir: data that takes
// a build or an unpack long enough to be killed half-way.
func padFiles(t *testing.T, dir string, n, size int) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	b := make([]byte, size)
	for i := range n {
		crand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("pad%d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// mustOK runs ops and fails the test unless it exits with 0.
func mustOK(t *testing.T, e *env, home string, env []string, args ...string) result {
	t.Helper()
	r := e.runWith(t, home, env, args...)
	if r.code != 0 {
		t.Fatalf("ops %s: %d\n%s\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// TestE2ECrashBuild: ops build killed mid-build (of a changed source); the next build
// succeeds, and an image with a key is the whole image.
func TestE2ECrashBuild(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		home = writableHome(t, home)
		dir := t.TempDir()
		ce := inDir(e, dir)
		padFiles(t, filepath.Join(dir, "data"), 6, 4<<20)
		writeFiles(t, dir, map[string]string{"config.json": `{"Dirs": ["data"]}`})
		args := []string{"build", e.progs["hello_static"], "-c", "config.json", "--guest", guest, "-i", "crash"}
		img := filepath.Join(home, "images")
		ref := filepath.Join(t.TempDir(), "ref")
		mustOK(t, ce, home, nil, append(args, "-o", ref)...)
		st, err := os.Stat(ref)
		if err != nil {
			t.Fatal(err)
		}
		size := st.Size()
		before := func(t *testing.T) {
			// A source changed since: the build writes the image.
			now := time.Now()
			os.Chtimes(filepath.Join(dir, "data", "pad0"), now, now)
		}
		campaign{seeds: 5, args: args, before: before, after: func(t *testing.T, seed int) {
			// What the kill left: an image with a key is whole.
			if p := imagePath(t, img, "crash"); p != "" {
				if _, err := os.Stat(keyFile(p)); err == nil {
					if st, _ := os.Stat(p); st.Size() != size {
						t.Fatalf("seed %d: a key vouches for an image of %d bytes, not %d", seed, st.Size(), size)
					}
				}
			}
			mustOK(t, ce, home, nil, args...)
		}}.run(t, ce, home)
		// The image left boots.
		r := ce.run(t, home, "run", e.progs["hello_static"], "-c", "config.json", "--guest", guest, "-i", "crash")
		if r.code != 0 || !strings.Contains(r.stdout, "hello from C") {
			t.Fatalf("run: %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
}

// imagePath is the image named name (with its guest's suffix) in the images folder, "" when there is none.
func imagePath(t *testing.T, dir, name string) string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), name) && en.Type().IsRegular() {
			return filepath.Join(dir, en.Name())
		}
	}
	return ""
}

// keyFile is the build key beside an image.
func keyFile(p string) string { return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".key") }

// releaseTarball is a fake Nanos release padded with klibs of random
// bytes, so installing it takes a moment.
func releaseTarball(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zr, err := gzip.NewReader(bytes.NewReader(fakeReleaseTarball(t)))
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		tw.WriteHeader(h)
		b := make([]byte, h.Size)
		io.ReadFull(tr, b)
		tw.Write(b)
	}
	pad := make([]byte, 4<<20)
	for i := range 4 {
		crand.Read(pad)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("klibs/pad%d", i), Mode: 0o644, Size: int64(len(pad)), Typeflag: tar.TypeReg})
		tw.Write(pad)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// TestE2ECrashUpdate: ops update --from killed mid-install; the next
// install succeeds and the release is whole.
func TestE2ECrashUpdate(t *testing.T) {
	e := getEnv(t)
	home := t.TempDir()
	file := filepath.Join(t.TempDir(), "nanos-release-linux-0.1.90.tar.gz")
	os.WriteFile(file, releaseTarball(t), 0o644)
	args := []string{"update", "--from", file}
	campaign{seeds: 5, args: args, after: func(t *testing.T, seed int) {
		// Killed: the release is there whole (its kernel and all four
		// klibs) or not at all.
		if _, err := os.Stat(filepath.Join(home, "0.1.90")); err == nil {
			for _, f := range []string{"kernel.img", "boot.img", "klibs/pad3"} {
				if _, err := os.Stat(filepath.Join(home, "0.1.90", f)); err != nil {
					t.Fatalf("seed %d: a half-installed release: %v", seed, err)
				}
			}
		}
		mustOK(t, e, home, nil, args...)
		if b, _ := os.ReadFile(filepath.Join(home, "latest.txt")); strings.TrimSpace(string(b)) != "0.1.90" {
			t.Fatalf("seed %d: latest.txt %q", seed, b)
		}
	}}.run(t, e, home)
}

// TestE2ECrashPkgGet: ops pkg get from a local index, killed mid-way;
// the next get succeeds and the package is whole.
func TestE2ECrashPkgGet(t *testing.T) {
	e := getEnv(t)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	man := []byte(`{"Program":"big_1.0/hello_static","Version":"1.0"}`)
	tw.WriteHeader(&tar.Header{Name: "big_1.0/package.manifest", Mode: 0o644, Size: int64(len(man)), Typeflag: tar.TypeReg})
	tw.Write(man)
	pad := make([]byte, 4<<20)
	for i := range 4 {
		crand.Read(pad)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("big_1.0/sysroot/pad%d", i), Mode: 0o644, Size: int64(len(pad)), Typeflag: tar.TypeReg})
		tw.Write(pad)
	}
	tw.Close()
	zw.Close()
	sum := sha256.Sum256(buf.Bytes())
	index := fmt.Sprintf(`{"Version":1,"Packages":[{"name":"big","namespace":"tests","version":"1.0","sha256":"%s","arch":"amd64"}]}`, hex.EncodeToString(sum[:]))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/manifest.json":
			w.Write([]byte(index))
		case "/v2/packages/tests/big/1.0.tar.gz":
			w.Write(buf.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	home := t.TempDir()
	env := []string{"OPS_PACKAGE_MANIFEST_URL=" + srv.URL + "/v2/manifest.json"}
	args := []string{"pkg", "get", "tests/big:1.0"}
	before := func(t *testing.T) { e.runWith(t, home, env, "pkg", "delete", "tests/big:1.0") }
	campaign{seeds: 5, env: env, args: args, before: before, after: func(t *testing.T, seed int) {
		mustOK(t, e, home, env, args...)
		r := mustOK(t, e, home, env, "pkg", "contents", "tests/big:1.0")
		if !strings.Contains(r.stdout, "pad3") {
			t.Fatalf("seed %d: contents %q", seed, r.stdout)
		}
	}}.run(t, e, home)
}

// TestE2ECrashVolumeCreate: ops volume create killed mid-way; volume list
// shows it whole or not at all, and the next create succeeds.
func TestE2ECrashVolumeCreate(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		home = writableHome(t, home)
		seed := t.TempDir()
		padFiles(t, seed, 4, 2<<20)
		args := []string{"volume", "create", "cv", "-s", "64M", "-d", seed, "--guest", guest}
		before := func(t *testing.T) { e.run(t, home, "volume", "delete", "cv") }
		campaign{seeds: 3, args: args, before: before, after: func(t *testing.T, n int) {
			// Listed means whole: a Nanos volume's files read back.
			if r := e.run(t, home, "volume", "list"); strings.Contains(r.stdout, "cv") {
				if r := e.run(t, home, "volume", "ls", "cv"); guest == "nanos" && (r.code != 0 || !strings.Contains(r.stdout, "pad3")) {
					t.Fatalf("seed %d: a listed volume that is not whole: %s %s", n, r.stdout, r.stderr)
				}
				mustOK(t, e, home, nil, "volume", "delete", "cv")
			}
			mustOK(t, e, home, nil, args...)
		}}.run(t, e, home)
	})
}

// TestE2ECrashInstanceCreate: ops instance create killed mid-way; the
// instance is listed whole (and deletes) or not at all, and the next
// create succeeds.
func TestE2ECrashInstanceCreate(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		home = writableHome(t, home)
		args := []string{"instance", "create", e.progs["hello_static"], "--guest", guest, "--name", "ci", "-a", "0"}
		before := func(t *testing.T) { e.run(t, home, "instance", "delete", "-f", "ci") }
		t.Cleanup(func() { before(t) })
		campaign{seeds: 3, args: args, before: before, after: func(t *testing.T, n int) {
			if in, ok := listInstances(t, e, home)["ci"]; ok {
				if in.Name != "ci" || in.Status == "" {
					t.Fatalf("seed %d: a half-made instance: %+v", n, in)
				}
				mustOK(t, e, home, nil, "instance", "delete", "-f", "ci")
			}
			mustOK(t, e, home, nil, args...)
		}}.run(t, e, home)
	})
}

// TestE2ECrashComposeUp: ops compose up -d killed mid-way; the next up
// removes what it left, says so, and brings the project up.
func TestE2ECrashComposeUp(t *testing.T) {
	e := getEnv(t)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		home = writableHome(t, home)
		dir := t.TempDir()
		name := fmt.Sprintf("crash%d%s", os.Getpid()%1000, guest)
		writeFiles(t, dir, map[string]string{"compose.yaml": fmt.Sprintf("name: %s\nservices:\n  a:\n    x-ops: {program: %s}\n    command: [\"0\"]\n    deploy: {replicas: 2}\n", name, e.progs["hello_static"])})
		ce := inDir(e, dir)
		args := []string{"compose", "up", "-d", "--guest", guest}
		before := func(t *testing.T) { ce.run(t, home, "compose", "down") }
		t.Cleanup(func() { before(t) })
		campaign{seeds: 3, args: args, before: before, after: func(t *testing.T, n int) {
			r := ce.run(t, home, args...)
			switch {
			case r.code == 0 && strings.Contains(r.stdout+r.stderr, "killed on the way"):
				t.Logf("seed %d: the next up cleared what the killed one left", n)
			case r.code != 0 && strings.Contains(r.stderr, "is up already"):
				// The killed up had brought the project up before the kill.
				t.Logf("seed %d: the killed up had finished", n)
			case r.code != 0:
				t.Fatalf("seed %d: ops %s: %d\n%s\n%s", n, strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
			// Both replicas, and nothing else of the project.
			r = mustOK(t, ce, home, nil, "compose", "ps")
			if strings.Count(r.stdout, name+"-a-") != 2 {
				t.Fatalf("seed %d: compose ps:\n%s", n, r.stdout)
			}
			if l := listInstances(t, e, home); len(l) != 2 {
				t.Fatalf("seed %d: instances %+v", n, l)
			}
		}}.run(t, ce, home)
	})
}

// TestE2EConcurrentCreates: two instance creates of one name, and two
// compose ups of one project, at once: one wins, the other gets one line.
func TestE2EConcurrentCreates(t *testing.T) {
	e := getEnv(t)
	home := t.TempDir()
	both := func(args ...string) (ok int, errs []string) {
		out := make(chan result, 2)
		for range 2 {
			go func() { out <- e.run(t, home, args...) }()
		}
		for range 2 {
			r := <-out
			if r.code == 0 {
				ok++
			} else {
				errs = append(errs, strings.TrimSpace(r.stderr))
			}
		}
		return ok, errs
	}
	ok, errs := both("instance", "create", e.progs["hello_static"], "--guest", "linux", "--name", "twin", "-a", "0")
	t.Cleanup(func() { e.run(t, home, "instance", "delete", "-f", "twin") })
	if ok != 1 || len(errs) != 1 || strings.Contains(errs[0], "\n") || !strings.Contains(errs[0], "exists already") {
		t.Fatalf("instance create twice: %d won; %q", ok, errs)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"compose.yaml": fmt.Sprintf("name: twin%d\nservices:\n  a:\n    x-ops: {program: %s}\n    command: [\"0\"]\n", os.Getpid()%1000, e.progs["hello_static"])})
	ce := inDir(e, dir)
	out := make(chan result, 2)
	for range 2 {
		go func() { out <- ce.run(t, home, "compose", "up", "-d", "--guest", "linux") }()
	}
	t.Cleanup(func() { ce.run(t, home, "compose", "down") })
	var won int
	for range 2 {
		r := <-out
		if r.code == 0 {
			won++
		} else if msg := strings.TrimSpace(r.stderr); strings.Contains(msg, "\n") || !regexp.MustCompile(`at work on it|up already`).MatchString(msg) {
			t.Fatalf("the losing up: %q", msg)
		}
	}
	if won != 1 {
		t.Fatalf("%d ups won", won)
	}
}

// TestE2EDiskFull: a build into an ops home on a disk that fills up gives
// one line and leaves nothing in the images folder.
func TestE2EDiskFull(t *testing.T) {
	e := getEnv(t)
	if os.Geteuid() != 0 {
		t.Skip("SKIP: mounting a small tmpfs needs root")
	}
	// The Linux guest's kernel, unpacked once outside the small disk.
	mustOK(t, e, e.home, nil, "build", e.progs["hello_static"], "--guest", "linux", "-o", filepath.Join(t.TempDir(), "img"))
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("SKIP: mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	home := filepath.Join(mnt, "home")
	os.MkdirAll(home, 0o755)
	os.Symlink(filepath.Join(e.home, "linux"), filepath.Join(home, "linux"))
	dir := t.TempDir()
	padFiles(t, filepath.Join(dir, "data"), 6, 4<<20)
	writeFiles(t, dir, map[string]string{"config.json": `{"Dirs": ["data"]}`})
	r := inDir(e, dir).run(t, home, "build", e.progs["hello_static"], "-c", "config.json", "--guest", "linux", "-i", "big")
	msg := strings.TrimSpace(r.stderr)
	if r.code == 0 || strings.Contains(msg, "\n") || !strings.Contains(msg, "no space left") {
		t.Fatalf("build on a full disk: %d %q", r.code, msg)
	}
	ents, _ := os.ReadDir(filepath.Join(home, "images"))
	for _, en := range ents {
		if !strings.HasSuffix(en.Name(), ".lock") {
			t.Errorf("left on the full disk: %s", en.Name())
		}
	}
	t.Logf("%s", msg)
}
