//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2ENanovmsHome points ops at a home laid out exactly as nanovms/ops
// lays it out — OPS_HOME=X means X/.ops, holding latest.txt, the release
// folder, images/, local_packages/<arch>/<name>_<version>/ and volumes/ —
// and runs a program, loads a local package, mounts a volume from
// volumes/ (NAME:UUID.raw) and reads both images.
func TestE2ENanovmsHome(t *testing.T) {
	e := getEnv(t)
	rel := nanosHome(t) // skips without a Nanos release
	ver, _ := os.ReadFile(filepath.Join(rel, "latest.txt"))
	v := strings.TrimSpace(string(ver))
	x := t.TempDir()
	home := filepath.Join(x, ".ops")
	pkg := filepath.Join(home, "local_packages", "amd64", "hellopkg_1.0")
	for _, d := range []string{filepath.Join(home, "images"), filepath.Join(home, "volumes"), pkg} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(rel, v), filepath.Join(home, v)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, "latest.txt"), []byte(v), 0o644) // nanovms/ops writes no newline
	prog, err := os.ReadFile(e.progs["hello_static"])
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(pkg, "hello_static"), prog, 0o755)
	os.WriteFile(filepath.Join(pkg, "package.manifest"), []byte(`{
   "Program": "hellopkg_1.0/hello_static",
   "Args": ["hello_static"],
   "Version": "1.0",
   "Env": {"FROM": "pkg"}
}`), 0o644)
	env := []string{"OPS_HOME=" + x}
	r := e.runWith(t, home, env, "version")
	if !strings.Contains(r.stdout, "Nanos version: "+v) {
		t.Fatalf("version: %q %s", r.stdout, r.stderr)
	}
	if r = e.runWith(t, home, env, "run", "./hello_static", "-a", "3"); r.code != 3 || !strings.Contains(r.stdout, "hello from C, 2 args") {
		t.Fatalf("run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(home, "images", "hello_static")); err != nil {
		t.Fatalf("the image is not in $OPS_HOME/.ops/images: %v", err)
	}
	if r = e.runWith(t, home, env, "pkg", "list", "-l"); !strings.Contains(r.stdout, "hellopkg") {
		t.Fatalf("pkg list -l: %q %s", r.stdout, r.stderr)
	}
	if r = e.runWith(t, home, env, "pkg", "load", "-l", "hellopkg:1.0", "-a", "4"); r.code != 4 || !strings.Contains(r.stdout, "hello from C, 2 args") {
		t.Fatalf("pkg load: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// image create builds from a package, as nanovms/ops's does.
	if r = e.runWith(t, home, env, "image", "create", "-l", "--package", "hellopkg:1.0", "-i", "frompkg"); r.code != 0 || !strings.Contains(r.stdout, filepath.Join("images", "frompkg")) {
		t.Fatalf("image create --package: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	// A volume in volumes/NAME:UUID.raw, mounted by name: busybox's shell
	// writes a file there, and ops reads it back out of the volume.
	if r = e.runWith(t, home, env, "volume", "create", "vol1", "-s", "16M"); r.code != 0 {
		t.Fatalf("volume create: %s", r.stderr)
	}
	if m, _ := filepath.Glob(filepath.Join(home, "volumes", "vol1:*.raw")); len(m) != 1 {
		t.Fatalf("volume file: %v", m)
	}
	if _, err := os.Stat("/bin/busybox"); err == nil {
		cfg := filepath.Join(x, "sh.json")
		os.WriteFile(cfg, []byte(`{"Argv0": "sh", "Args": ["-c", "echo kept > /data/note"]}`), 0o644)
		if r = e.runWith(t, home, env, "run", "-c", cfg, "/bin/busybox", "--mounts", "vol1:/data"); r.code != 0 {
			t.Fatalf("run with the volume: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if r = e.runWith(t, home, env, "volume", "cp", "vol1:/note", x); r.code != 0 {
			t.Fatalf("volume cp: %s", r.stderr)
		}
		if b, _ := os.ReadFile(filepath.Join(x, "note")); string(b) != "kept\n" {
			t.Fatalf("the volume holds %q", b)
		}
	}
	if r = e.runWith(t, home, env, "image", "env", "hellopkg_1.0"); !strings.Contains(r.stdout, "FROM: pkg") || !strings.Contains(r.stdout, "NANOS_VERSION: "+v) {
		t.Fatalf("image env: %q %s", r.stdout, r.stderr)
	}
	if r = e.runWith(t, home, env, "image", "list"); !strings.Contains(r.stdout, "hello_static") || !strings.Contains(r.stdout, "hellopkg_1.0") {
		t.Fatalf("image list: %q", r.stdout)
	}
	if r = e.runWith(t, home, env, "image", "delete", "hello_static", "hellopkg_1.0", "busybox", "frompkg"); r.code != 0 {
		t.Fatalf("image delete: %s", r.stderr)
	}
	if ents, _ := os.ReadDir(filepath.Join(home, "images")); len(ents) != 0 {
		t.Fatalf("image delete left %v", ents)
	}
}

// TestE2ETraceOnNanos: --syscall-summary and --missing-files set the
// manifest options Nanos reads, and Nanos prints what they ask for.
func TestE2ETraceOnNanos(t *testing.T) {
	e := getEnv(t)
	home := nanosHome(t)
	r := e.run(t, home, "run", "./hello_static", "--syscall-summary", "--missing-files", "-a", "0")
	if r.code != 0 || !strings.Contains(r.stdout, "missing_files_begin") || !strings.Contains(r.stdout, "syscall") || !strings.Contains(r.stdout, "total") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}
