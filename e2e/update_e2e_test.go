//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeReleaseTarball packs a release-shaped archive: a stand-in kernel
// (any x86-64 ELF) and a boot.img with a valid region record.
func fakeReleaseTarball(t *testing.T) []byte {
	boot := make([]byte, 512+1024)
	binary.LittleEndian.PutUint64(boot[0x1aa:], 0x8000)
	binary.LittleEndian.PutUint64(boot[0x1aa+8:], 1024)
	binary.LittleEndian.PutUint32(boot[0x1aa+16:], 12)
	boot[510], boot[511] = 0x55, 0xaa
	kern, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range map[string][]byte{"kernel.img": kern, "boot.img": boot, "klibs/strace": []byte("k")} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestE2EUpdate(t *testing.T) {
	e := getEnv(t)
	tgz := fakeReleaseTarball(t)
	sum := sha256.Sum256(tgz)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/latest.txt":
			w.Write([]byte("0.1.77\n"))
		case "/0.1.77/nanos-release-linux-0.1.77.tar.gz":
			w.Write(tgz)
		case "/0.1.77/nanos-release-linux-0.1.77.tar.gz.sha256":
			w.Write([]byte(hex.EncodeToString(sum[:]) + "\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	home := t.TempDir()
	r := e.run(t, home, "update", "--url", srv.URL)
	if r.code != 0 || !strings.Contains(r.stdout, "installed Nanos 0.1.77") || !strings.Contains(r.stdout, "SHA-256 verified") {
		t.Fatalf("update: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(home, "latest.txt")); strings.TrimSpace(string(b)) != "0.1.77" {
		t.Fatalf("latest.txt %q", b)
	}
	srv.Close()
	// Offline: one clear line, nothing changed.
	r = e.run(t, home, "update", "--url", srv.URL)
	if r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "--from") {
		t.Fatalf("offline update: %d %q", r.code, r.stderr)
	}
	// From a file, offline; --nanos-version then picks either release.
	file := filepath.Join(t.TempDir(), "nanos-release-linux-0.1.78.tar.gz")
	os.WriteFile(file, tgz, 0o644)
	if r = e.run(t, home, "update", "--from", file); r.code != 0 || !strings.Contains(r.stdout, "0.1.78") {
		t.Fatalf("update --from: %q %q", r.stdout, r.stderr)
	}
	for _, v := range []string{"0.1.77", "0.1.78"} {
		out := filepath.Join(t.TempDir(), "img")
		if r = e.run(t, home, "build", "./hello_static", "--nanos-version", v, "-o", out); r.code != 0 {
			t.Fatalf("build with %s: %s", v, r.stderr)
		}
	}
	if r = e.run(t, home, "build", "./hello_static", "--nanos-version", "9.9"); r.code == 0 || !strings.Contains(r.stderr, "installed: 0.1.77, 0.1.78") {
		t.Fatalf("unknown version: %q", r.stderr)
	}
	// A broken archive is refused.
	bad := filepath.Join(t.TempDir(), "nanos-release-linux-0.1.79.tar.gz")
	os.WriteFile(bad, []byte("not gzip"), 0o644)
	if r = e.run(t, home, "update", "--from", bad); r.code == 0 || !strings.Contains(r.stderr, "gzip") {
		t.Fatalf("broken archive: %q", r.stderr)
	}
}

// TestE2EConfigErrors: bad input gets one line naming the file, the key
// and its line; flags override the file only when given.
func TestE2EConfigErrors(t *testing.T) {
	e := getEnv(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte("{\n  \"Args\": [\"a\"],\n  \"RunConfg\": {}\n}\n"), 0o644)
	r := e.run(t, e.home, "build", "-c", cfg, "./hello_static")
	if r.code == 0 || strings.TrimSpace(r.stderr) != "ops: "+cfg+`:3: unknown key "RunConfg": did you mean "RunConfig"? (the README's config.json table lists the keys)` {
		t.Fatalf("unknown key: %q", r.stderr)
	}
	os.WriteFile(cfg, []byte("{\"RunConfig\": {\"Memory\": 512}}"), 0o644)
	if r = e.run(t, e.home, "build", "-c", cfg, "./hello_static"); r.code == 0 || !strings.Contains(r.stderr, "RunConfig.Memory must be a string") {
		t.Fatalf("wrong type: %q", r.stderr)
	}
	if r = e.run(t, e.home, "run", "./hello_static", "-p", "nope"); r.code == 0 || !strings.Contains(r.stderr, `"nope" is not a port number`) {
		t.Fatalf("bad port: %q", r.stderr)
	}
	// -a replaces the file's Args, as in nanovms/ops.
	os.WriteFile(cfg, []byte(`{"Args": ["4", "y", "z"], "Env": {"A": "1"}}`), 0o644)
	if r = e.run(t, e.home, "run", "-c", cfg, "./hello_static", "-a", "5", "-a", "x"); r.code != 5 || !strings.Contains(r.stdout, "3 args") {
		t.Fatalf("config args: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestE2EErrorStack: an unexpected error (here a boot loader that cannot
// be read) is one line; with -v or OPS_DEBUG=1 its stack follows, naming
// where it started.
func TestE2EErrorStack(t *testing.T) {
	e := getEnv(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	// The kernel is any readable file; the boot loader is a folder.
	os.WriteFile(cfg, []byte(`{"Kernel": "`+filepath.Join(dir, "config.json")+`", "Boot": "`+dir+`"}`), 0o644)
	for _, tc := range []struct {
		name  string
		extra []string
		args  []string
		stack bool
	}{
		{"plain", nil, nil, false},
		{"-v", nil, []string{"-v"}, true},
		{"OPS_DEBUG", []string{"OPS_DEBUG=1"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.runWith(t, e.home, tc.extra, append([]string{"build", "-c", cfg, "-o", filepath.Join(dir, "img"), "./hello_static"}, tc.args...)...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code != 1 || !strings.HasPrefix(lines[0], "ops: boot loader: read "+dir+": is a directory") {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if got := len(lines) > 1 && strings.Contains(r.stderr, "lepton/guest_nanos.go:"); got != tc.stack {
				t.Fatalf("stack shown: %v, want %v; stderr %q", got, tc.stack, r.stderr)
			}
		})
	}
}
