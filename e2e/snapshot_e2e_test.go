//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// randC prints 16 bytes from getrandom, 16 from /dev/urandom and the
// wall clock in ns, then exits with its first argument.
const randC = `#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
int main(int argc, char **argv) {
	unsigned char g[16], u[16];
	getrandom(g, 16, 0);
	FILE *f = fopen("/dev/urandom", "r");
	if (!f || fread(u, 1, 16, f) != 16) return 100;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	printf("getrandom ");
	for (int i = 0; i < 16; i++) printf("%02x", g[i]);
	printf(" urandom ");
	for (int i = 0; i < 16; i++) printf("%02x", u[i]);
	printf(" time %lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	return argc > 1 ? atoi(argv[1]) : 0;
}
`

var randLine = regexp.MustCompile(`getrandom ([0-9a-f]{32}) urandom ([0-9a-f]{32}) time (\d+)`)

// TestE2ESnapshot: the Linux guest's first run of an image saves the VM
// at init's snapshot point; later runs start from it. Two restored runs
// started at once read different random bytes from getrandom and from
// /dev/urandom, and their clocks are the host's, though the snapshot
// was saved seconds before. A damaged snapshot is said, replaced, and
// the run boots; --no-snapshot boots cold; image delete removes it.
func TestE2ESnapshot(t *testing.T) {
	e := getEnv(t)
	if os.Getenv("OPS_NO_SNAPSHOT") == "1" {
		t.Skip("SKIP: OPS_NO_SNAPSHOT=1 turns snapshots off for this run")
	}
	home := t.TempDir()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rand.c"), []byte(randC), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(dir, "gcc", "-O2", "-static", "-o", "rand", "rand.c"); err != nil {
		t.Fatal(err)
	}
	ce := inDir(e, dir)
	type out struct {
		rand, urandom string
		at            time.Duration // the guest's clock less the host's when it printed
		stderr        string
	}
	runRand := func(t *testing.T, args ...string) out {
		t.Helper()
		before := time.Now()
		r := ce.run(t, home, append([]string{"run", "./rand", "--guest", "linux", "-a", "7"}, args...)...)
		after := time.Now()
		m := randLine.FindStringSubmatch(r.stdout)
		if r.code != 7 || m == nil {
			t.Fatalf("exit %d, want 7 after the random line:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		ns, _ := strconv.ParseInt(m[3], 10, 64)
		guest := time.Unix(0, ns)
		var off time.Duration
		switch {
		case guest.Before(before):
			off = guest.Sub(before)
		case guest.After(after):
			off = guest.Sub(after)
		}
		return out{m[1], m[2], off, r.stderr}
	}
	snapshot := filepath.Join(home, "snapshots", "rand.initramfs.state")
	first := runRand(t)
	if _, err := os.Stat(snapshot); err != nil {
		t.Fatalf("the first run saved no snapshot: %v\n%s", err, first.stderr)
	}
	if l := ce.run(t, home, "image", "list").stdout; !regexp.MustCompile(`rand\.initramfs\s+\d+\s+\d+M\s`).MatchString(l) {
		t.Fatalf("image list shows no snapshot size:\n%s", l)
	}
	// A naive restore would print the snapshot's time, seconds behind.
	time.Sleep(3 * time.Second)
	var wg sync.WaitGroup
	outs := make([]out, 2)
	for i := range outs {
		wg.Add(1)
		go func() { defer wg.Done(); outs[i] = runRand(t) }()
	}
	wg.Wait()
	for i, o := range outs {
		if o.at < -time.Second || o.at > time.Second {
			t.Errorf("restored run %d: the guest's clock is %v off the host's", i, o.at)
		}
	}
	seen := map[string]bool{}
	for _, s := range []string{first.rand, first.urandom, outs[0].rand, outs[0].urandom, outs[1].rand, outs[1].urandom} {
		if seen[s] {
			t.Errorf("the same random bytes %s in two runs: %+v %+v %+v", s, first, outs[0], outs[1])
		}
		seen[s] = true
	}
	// A restored Go server answers through its port forward.
	port := freePorts(t, 1)
	for i := 0; i < 2; i++ {
		stop := startServer(t, inDir(e, e.dir), home, "run", "./goserver", "--guest", "linux", "-p", strconv.Itoa(port)+":8080")
		body, err := getUntil(fmt.Sprintf("http://127.0.0.1:%d/", port), time.Now().Add(time.Minute))
		code, logs := stop()
		if err != nil || !strings.Contains(body, "hello over http on 8080") {
			t.Fatalf("run %d of the server: %q %v (exit %d)\n%s", i+1, body, err, code, logs)
		}
	}
	// A state changed in place (same size) or cut short: said, replaced,
	// booted.
	for name, damage := range map[string]func(){
		"changed": func() {
			f, err := os.OpenFile(snapshot, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := f.Stat()
			b := make([]byte, 1)
			f.ReadAt(b, st.Size()/2)
			b[0] ^= 0xff
			f.WriteAt(b, st.Size()/2)
			f.Close()
		},
		"cut short": func() { os.Truncate(snapshot, 1<<20) },
	} {
		damage()
		o := runRand(t)
		if !strings.Contains(o.stderr, "ops: the snapshot of rand.initramfs could not be used (") {
			t.Errorf("%s snapshot: not said:\n%s", name, o.stderr)
		}
		if o := runRand(t); strings.Contains(o.stderr, "could not be used") {
			t.Errorf("%s snapshot: not replaced:\n%s", name, o.stderr)
		}
	}
	if o := runRand(t, "--no-snapshot"); o.stderr != "" && strings.Contains(o.stderr, "snapshot") {
		t.Errorf("--no-snapshot: %s", o.stderr)
	}
	if r := ce.run(t, home, "image", "delete", "rand.initramfs"); r.code != 0 {
		t.Fatalf("image delete: %s", r.stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(home, "snapshots", "*rand*")); len(left) > 0 {
		t.Errorf("image delete left its snapshot: %v", left)
	}
}

// TestE2ESnapshotNanos: Nanos has no snapshot point yet, so its runs boot
// and save nothing.
func TestE2ESnapshotNanos(t *testing.T) {
	e := getEnv(t)
	home := writableHome(t, nanosHome(t))
	for i := 0; i < 2; i++ {
		if r := e.run(t, home, "run", "./hello_static", "--guest", "nanos", "-a", "3"); r.code != 3 {
			t.Fatalf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(home, "snapshots", "*")); len(left) > 0 {
		t.Errorf("a Nanos run saved a snapshot: %v", left)
	}
}
