package packages

import (
	"archive/tar"
	"bytes"
	"context"
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
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/opsdev/ops/arch"
)

func layerOf(t *testing.T, ents []ent) v1.Layer {
	t.Helper()
	data := mkTar(ents)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testImage(t *testing.T, arch string, layers ...[]ent) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, layerOf(t, l)); err != nil {
			t.Fatal(err)
		}
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{"/entry.sh"}
	cf.Config.Cmd = []string{"hello", "x"}
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin", "A=1"}
	cf.Config.WorkingDir = "/srv"
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func startRegistry(t *testing.T) string {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

var baseLayer = []ent{
	{name: "bin", typ: tar.TypeSymlink, link: "/usr/bin"},
	{name: "usr/bin/hello", body: "program"},
	{name: "etc/gone", body: "x"},
	{name: "opt/dir/a", body: "a"},
	{name: "dev/null", typ: tar.TypeChar},
}
var upperLayer = []ent{
	{name: "etc/.wh.gone"},
	{name: "opt/dir/.wh..wh..opq"},
	{name: "opt/dir/b", body: "b"},
}

func TestFlattenWhiteoutsAndLinks(t *testing.T) {
	img := testImage(t, "amd64", baseLayer, upperLayer)
	dest := filepath.Join(t.TempDir(), "root")
	if err := Flatten(img, dest); err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(dest, "bin")); err != nil || l != "/usr/bin" {
		t.Fatalf("absolute link not kept as written: %q %v", l, err)
	}
	for p, want := range map[string]bool{"usr/bin/hello": true, "etc/gone": false, "opt/dir/a": false, "opt/dir/b": true} {
		_, err := os.Lstat(filepath.Join(dest, p))
		if (err == nil) != want {
			t.Errorf("%s present=%v, want %v", p, err == nil, want)
		}
	}
}

func TestFlattenHostile(t *testing.T) {
	for name, layer := range map[string][]ent{
		"dot-dot":        {{name: "../../../evil", body: "x"}},
		"through a link": {{name: "etc", typ: tar.TypeSymlink, link: "/tmp"}, {name: "etc/evil", body: "x"}},
		"absolute":       {{name: "/abs-evil", body: "x"}},
	} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "a", "root")
			os.MkdirAll(filepath.Dir(dest), 0o755)
			err := Flatten(testImage(t, "amd64", layer), dest)
			// Either the layer is refused (and nothing is left), or the
			// flattener dropped the entry (go-containerregistry drops names
			// that climb out): never is anything written outside.
			if err != nil {
				if _, err := os.Stat(dest); !os.IsNotExist(err) {
					t.Fatal("destination left behind")
				}
			}
			for _, p := range []string{filepath.Join(parent, "evil"), "/tmp/evil", "/abs-evil"} {
				if _, err := os.Stat(p); err == nil {
					t.Fatalf("wrote %s", p)
				}
			}
		})
	}
}

func TestLoadImageSources(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	img := testImage(t, "amd64", baseLayer)
	ref, _ := name.ParseReference(reg + "/test/img:1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	arm := testImage(t, "arm64", baseLayer)
	armRef, _ := name.ParseReference(reg + "/test/arm:1")
	remote.Write(armRef, arm)
	r := Registry{Arch: arch.AMD64}
	got, err := r.LoadImage(ctx, reg+"/test/img:1")
	if err != nil {
		t.Fatal(err)
	}
	if d1, d2 := digest(t, got), digest(t, img); d1 != d2 {
		t.Fatalf("digest %s, want %s", d1, d2)
	}
	if _, err := r.LoadImage(ctx, reg+"/test/arm:1"); err == nil || !strings.Contains(err.Error(), "linux/arm64") {
		t.Fatalf("wrong platform: %v", err)
	}
	if _, err := r.LoadImage(ctx, reg+"/test/none:1"); err == nil || !strings.Contains(err.Error(), "no such image") {
		t.Fatalf("unknown reference: %v", err)
	}
	if _, err := r.LoadImage(ctx, "Not A Ref!"); err == nil || !strings.Contains(err.Error(), "not an image reference") {
		t.Fatalf("bad reference: %v", err)
	}
	// docker-archive tarball
	tarPath := filepath.Join(t.TempDir(), "img.tar")
	if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
		t.Fatal(err)
	}
	if got, err := r.LoadImage(ctx, tarPath); err != nil || digestOfLayers(t, got) != digestOfLayers(t, img) {
		t.Fatalf("docker-archive: %v", err)
	}
	// OCI layout
	lay := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	if got, err := r.LoadImage(ctx, lay); err != nil || digest(t, got) != digest(t, img) {
		t.Fatalf("OCI layout: %v", err)
	}
	cfg, err := ConfigOf(got)
	if err != nil || cfg.WorkingDir != "/srv" || cfg.Entrypoint[0] != "/entry.sh" {
		t.Fatalf("config %+v %v", cfg, err)
	}
}

func digest(t *testing.T, img v1.Image) string {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func digestOfLayers(t *testing.T, img v1.Image) string {
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, l := range ls {
		d, _ := l.DiffID()
		s = append(s, d.String())
	}
	return strings.Join(s, ",")
}

func TestPackagePushPullRoundTrip(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "node_20")
	files := map[string]string{
		ManifestFile:                   `{"Program":"node_20/node","Version":"20"}`,
		"node":                         "binary",
		"sysroot/lib/libx.so.1":        "lib",
		"sysroot/etc/ssl/certs/ca.pem": "cert",
	}
	for p, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755)
		os.WriteFile(filepath.Join(src, p), []byte(body), 0o644)
	}
	os.Symlink("libx.so.1", filepath.Join(src, "sysroot/lib/libx.so"))
	p := Package{Name: "node", Version: "20"}
	img, err := PackageImage(src, p, arch.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	r := Registry{}
	if _, err := r.Push(ctx, img, reg+"/team/node:20"); err != nil {
		t.Fatal(err)
	}
	// The same package pushes to the same digest.
	img2, _ := PackageImage(src, p, arch.AMD64)
	if digest(t, img) != digest(t, img2) {
		t.Fatal("package image is not reproducible")
	}
	s := Store{Home: t.TempDir(), Arch: "amd64"}
	got, dir, err := r.PullPackage(ctx, reg+"/team/node:20", s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Ref() != "node:20" {
		t.Fatalf("pulled %s", got.Ref())
	}
	for rel, body := range files {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil || string(b) != body {
			t.Errorf("%s: %q %v", rel, b, err)
		}
	}
	if l, _ := os.Readlink(filepath.Join(dir, "sysroot/lib/libx.so")); l != "libx.so.1" {
		t.Errorf("link %q", l)
	}
	// An ordinary image is not a package.
	plain := testImage(t, "amd64", baseLayer)
	ref, _ := name.ParseReference(reg + "/team/plain:1")
	remote.Write(ref, plain)
	if _, _, err := r.PullPackage(ctx, reg+"/team/plain:1", s); err == nil || !strings.Contains(err.Error(), "not an ops package") {
		t.Fatalf("plain image: %v", err)
	}
}

func TestDiskImageLayout(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "server")
	os.WriteFile(disk, bytes.Repeat([]byte{1}, 4096), 0o644)
	img, err := DiskImage(disk, arch.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	if len(ls) != 1 {
		t.Fatalf("%d layers", len(ls))
	}
	rc, _ := ls[0].Uncompressed()
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
		if h.Uid != 107 || h.Gid != 107 {
			t.Errorf("%s owned by %d:%d, want 107:107", h.Name, h.Uid, h.Gid)
		}
	}
	if strings.Join(names, " ") != "disk/ disk/server.img" {
		t.Fatalf("layer holds %v", names)
	}
	cf, _ := img.ConfigFile()
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Fatalf("platform %s/%s", cf.OS, cf.Architecture)
	}
}
