//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EPackageFromRunNode makes a local package from the machine's node
// and loads a script with it.
func TestE2EPackageFromRunNode(t *testing.T) {
	e := getEnv(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("SKIP: no node on this machine")
	}
	script := filepath.Join(e.dir, "hi.js")
	os.WriteFile(script, []byte(`console.log("hello from node " + process.argv.slice(2).join(",")); process.exit(5);`), 0o644)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		if guest == "nanos" {
			home = writableHome(t, home) // packages live beside the linked release
		}
		if r := e.run(t, home, "pkg", "from-run", node, "--name", "node", "--version", "20"); r.code != 0 {
			t.Fatalf("from-run: %d %s", r.code, r.stderr)
		}
		if r := e.run(t, home, "pkg", "list", "-l"); !strings.Contains(r.stdout, "node") || !strings.Contains(r.stdout, "20") {
			t.Fatalf("pkg list -l: %q", r.stdout)
		}
		r := e.run(t, home, "load", "-l", "node:20", "--guest", guest, "-a", "hi.js", "-a", "x")
		if r.code != 5 || !strings.Contains(r.stdout, "hello from node x") {
			t.Fatalf("load: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestE2EPackageRepo serves a package repository on 127.0.0.1 and uses
// it: list, search, get, contents, load, and the offline cache.
func TestE2EPackageRepo(t *testing.T) {
	e := getEnv(t)
	prog, err := os.ReadFile(e.progs["hello_static"])
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name string
		body []byte
		mode int64
	}{
		{"hello_1.0/package.manifest", []byte(`{"Program":"hello_1.0/hello_static","Args":["hello_static"],"Version":"1.0"}`), 0o644},
		{"hello_1.0/hello_static", prog, 0o755},
		{"hello_1.0/sysroot/etc/motd", []byte("hi\n"), 0o644},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		tw.Write(f.body)
	}
	tw.Close()
	zw.Close()
	sum := sha256.Sum256(buf.Bytes())
	index := fmt.Sprintf(`{"Version":1,"Packages":[{"name":"hello","namespace":"tests","version":"1.0","language":"c","description":"a static hello","sha256":"%s","arch":"amd64"}]}`, hex.EncodeToString(sum[:]))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/manifest.json":
			w.Write([]byte(index))
		case "/v2/packages/tests/hello/1.0.tar.gz":
			w.Write(buf.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	home := t.TempDir()
	os.Symlink(filepath.Join(e.home, "linux"), filepath.Join(home, "linux"))
	envs := []string{"OPS_PACKAGE_MANIFEST_URL=" + srv.URL + "/v2/manifest.json"}
	r := e.runWith(t, home, envs, "pkg", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "NAMESPACE") || !strings.Contains(r.stdout, "a static hello") {
		t.Fatalf("pkg list: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r = e.runWith(t, home, envs, "pkg", "search", "static"); !strings.Contains(r.stdout, "tests") {
		t.Fatalf("pkg search: %q", r.stdout)
	}
	if r = e.runWith(t, home, envs, "pkg", "get", "tests/hello:1.0"); r.code != 0 {
		t.Fatalf("pkg get: %q", r.stderr)
	}
	if r = e.runWith(t, home, envs, "pkg", "contents", "tests/hello"); !strings.Contains(r.stdout, "sysroot/etc/motd") {
		t.Fatalf("pkg contents: %q %q", r.stdout, r.stderr)
	}
	if r = e.runWith(t, home, envs, "pkg", "get", "tests/helo"); r.code == 0 || !strings.Contains(r.stderr, "did you mean tests/hello:1.0") {
		t.Fatalf("misspelt name: %q", r.stderr)
	}
	r = e.runWith(t, home, envs, "pkg", "load", "tests/hello:1.0", "--guest", "linux", "-a", "3")
	if r.code != 3 || !strings.Contains(r.stdout, "hello from C, 2 args") {
		t.Fatalf("pkg load: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// Offline: the repository is gone; the cached index still lists, with a notice.
	srv.Close()
	os.Chtimes(filepath.Join(home, "packages", "manifest.json"), timeLongAgo, timeLongAgo)
	r = e.runWith(t, home, envs, "list")
	if r.code != 0 || !strings.Contains(r.stdout, "hello") || !strings.Contains(r.stderr, "cannot be reached") {
		t.Fatalf("offline list: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = e.runWith(t, t.TempDir(), envs, "list")
	if r.code == 0 || !strings.Contains(r.stderr, "no copy is cached") || strings.Contains(r.stderr, "panic") {
		t.Fatalf("offline list without a cache: %d %q", r.code, r.stderr)
	}
}

var timeLongAgo = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
