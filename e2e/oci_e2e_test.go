//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// localRegistry serves an in-process registry on 127.0.0.1 for the
// test and returns its host:port.
func localRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushImage writes img to ref.
func pushImage(t testing.TB, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

type tarEnt struct {
	name, link string
	typ        byte
	body       []byte
	mode       int64
}

func layer(t testing.TB, ents []tarEnt) v1.Layer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		tw.WriteHeader(h)
		tw.Write(e.body)
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestE2EPackageFromImage builds a container image holding the static
// hello (with an entrypoint script, a whiteout and an absolute /bin link),
// serves it from an in-process registry on 127.0.0.1, makes a package of
// it and runs it.
func TestE2EPackageFromImage(t *testing.T) {
	e := getEnv(t)
	prog, err := os.ReadFile(e.progs["hello_static"])
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image,
		layer(t, []tarEnt{
			{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
			{name: "bin", typ: tar.TypeSymlink, link: "/usr/bin"},
			{name: "usr/bin/hello", body: prog, mode: 0o755},
			{name: "docker-entrypoint.sh", body: []byte("#!/bin/sh\nexec \"$@\"\n"), mode: 0o755},
			{name: "etc/secret", body: []byte("gone")},
		}),
		layer(t, []tarEnt{{name: "etc/.wh.secret"}, {name: "srv/data.txt", body: []byte("data")}}))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"docker-entrypoint.sh"}
	cf.Config.Cmd = []string{"hello", "6"}
	cf.Config.Env = []string{"PATH=/bin:/usr/bin:/"}
	cf.Config.WorkingDir = "/srv"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	host := localRegistry(t)
	pushImage(t, host+"/tests/hello:1", img)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		if guest == "nanos" {
			home = writableHome(t, home) // packages live beside the linked release
		}
		r := e.run(t, home, "pkg", "from-image", host+"/tests/hello:1", "--name", "hello", "--version", "1")
		if r.code != 0 || !strings.Contains(r.stderr, "skipping docker-entrypoint.sh") {
			t.Fatalf("from-image: %d %s %s", r.code, r.stdout, r.stderr)
		}
		if r = e.run(t, home, "pkg", "contents", "-l", "hello:1"); strings.Contains(r.stdout, "secret") || !strings.Contains(r.stdout, "sysroot/srv/data.txt") {
			t.Fatalf("whiteout not applied or layers missing:\n%s", r.stdout)
		}
		r = e.run(t, home, "pkg", "load", "-l", "hello:1", "--guest", guest)
		if r.code != 6 || !strings.Contains(r.stdout, "hello from C, 2 args") {
			t.Fatalf("load: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		// --minimal keeps only the program (static: no libraries).
		r = e.run(t, home, "pkg", "from-image", host+"/tests/hello:1", "--name", "hellomin", "--version", "1", "--minimal", "--include", "/srv")
		if r.code != 0 {
			t.Fatalf("from-image --minimal: %s", r.stderr)
		}
		if r = e.run(t, home, "pkg", "contents", "-l", "hellomin:1"); strings.Contains(r.stdout, "docker-entrypoint.sh") || !strings.Contains(r.stdout, "srv/data.txt") {
			t.Fatalf("--minimal contents:\n%s", r.stdout)
		}
		if r = e.run(t, home, "load", "-l", "hellomin:1", "--guest", guest, "-a", "x"); r.code != 6 {
			t.Fatalf("minimal load: exit %d %s", r.code, r.stderr)
		}
	})
	// Pushing and pulling a package round-trips it.
	home := t.TempDir()
	if r := e.run(t, home, "pkg", "from-image", host+"/tests/hello:1", "--name", "hello", "--version", "1"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := e.run(t, home, "pkg", "push", "-l", "hello:1", host+"/tests/pkg-hello:1"); r.code != 0 {
		t.Fatalf("pkg push: %s", r.stderr)
	}
	home2 := t.TempDir()
	if r := e.run(t, home2, "pkg", "pull", host+"/tests/pkg-hello:1"); r.code != 0 || !strings.Contains(r.stdout, "hello:1") {
		t.Fatalf("pkg pull: %s %s", r.stdout, r.stderr)
	}
	a, _ := os.ReadFile(filepath.Join(home, "local_packages/amd64/hello_1/sysroot/usr/bin/hello"))
	b, _ := os.ReadFile(filepath.Join(home2, "local_packages/amd64/hello_1/sysroot/usr/bin/hello"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("package changed on its way through the registry")
	}
}

// TestE2EImagePush pushes a Nanos disk image as a KubeVirt containerDisk.
// It builds with a stand-in kernel and boot loader, so it runs without a
// Nanos release.
func TestE2EImagePush(t *testing.T) {
	e := getEnv(t)
	dir := t.TempDir()
	boot := make([]byte, 512+1024)
	binary.LittleEndian.PutUint64(boot[0x1aa:], 0x8000)
	binary.LittleEndian.PutUint64(boot[0x1aa+8:], 1024)
	binary.LittleEndian.PutUint32(boot[0x1aa+16:], 12)
	boot[510], boot[511] = 0x55, 0xaa
	os.WriteFile(filepath.Join(dir, "boot.img"), boot, 0o644)
	kern, _ := os.ReadFile("/bin/true")
	os.WriteFile(filepath.Join(dir, "kernel.img"), kern, 0o644)
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"Kernel": "`+dir+`/kernel.img", "Boot": "`+dir+`/boot.img"}`), 0o644)
	home := t.TempDir()
	if r := e.run(t, home, "build", "--guest", "nanos", "-c", cfg, "./hello_static", "-i", "server"); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	// The image can be read back: tree, ls, cat.
	if r := e.run(t, home, "image", "cat", "server", "/etc/hosts"); r.code != 0 || !strings.Contains(r.stdout, "localhost") {
		t.Fatalf("image cat: %q %q", r.stdout, r.stderr)
	}
	if r := e.run(t, home, "image", "ls", "server"); !strings.Contains(r.stdout, "hello_static") || !strings.Contains(r.stdout, "etc/") {
		t.Fatalf("image ls: %q %q", r.stdout, r.stderr)
	}
	if r := e.run(t, home, "image", "tree", "server"); !strings.Contains(r.stdout, "\n|   hello_static\n") {
		t.Fatalf("image tree: %q %q", r.stdout, r.stderr)
	}
	if r := e.run(t, home, "image", "tree", "server", "--manifest"); !strings.Contains(r.stdout, "program:/hello_static") {
		t.Fatalf("image tree --manifest: %q %q", r.stdout, r.stderr)
	}
	host := localRegistry(t)
	r := e.run(t, home, "image", "push", "server", host+"/vms/server:1.0")
	if r.code != 0 || !strings.Contains(r.stdout, "@sha256:") {
		t.Fatalf("image push: %d %s %s", r.code, r.stdout, r.stderr)
	}
	ref, _ := name.ParseReference(host + "/vms/server:1.0")
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	rc, _ := ls[0].Uncompressed()
	tr := tar.NewReader(rc)
	tr.Next()
	h, err := tr.Next()
	if err != nil || h.Name != "disk/server.img" {
		t.Fatalf("containerDisk layout: %v %v", h, err)
	}
	got, _ := io.ReadAll(tr)
	want, _ := os.ReadFile(filepath.Join(home, "images", "server"))
	if !bytes.Equal(got, want) {
		t.Fatal("pushed disk differs from the image")
	}
	// The Linux guest's initramfs is not a disk.
	e.run(t, e.home, "build", "--guest", "linux", "./hello_static", "-i", "notadisk")
	if r := e.run(t, e.home, "image", "push", filepath.Join(e.home, "images", "notadisk.initramfs"), host+"/vms/x:1"); r.code == 0 || !strings.Contains(r.stderr, "not a Nanos disk") {
		t.Fatalf("pushing an initramfs: %s", r.stderr)
	}
}
