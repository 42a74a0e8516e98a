package packages

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/opsdev/ops/arch"
)

// randomImage is a random one-layer image whose config says os/arch
// (nothing when both are empty).
func randomImage(t *testing.T, goos, goarch string) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = goos, goarch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// entry is an index entry: an image (or index) listed with a platform
// (nil: none).
type entry struct {
	add      mutate.Appendable
	platform *v1.Platform
}

func indexOf(entries ...entry) v1.ImageIndex {
	var adds []mutate.IndexAddendum
	for _, e := range entries {
		adds = append(adds, mutate.IndexAddendum{Add: e.add, Descriptor: v1.Descriptor{Platform: e.platform}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

func plat(s string) *v1.Platform {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		panic(err)
	}
	return p
}

// TestPickImage chooses the target architecture's image from
// multi-platform indexes built here: by the index's platforms (arm64 is
// listed with its v8 variant, as registries list it), through a nested
// index, by the image's config when the index names no platform, and
// fails in one line naming the platforms there are.
func TestPickImage(t *testing.T) {
	amd := randomImage(t, "linux", "amd64")
	arm := randomImage(t, "linux", "arm64")
	armv7 := randomImage(t, "linux", "arm")
	attest := randomImage(t, "", "")
	bare := randomImage(t, "", "")
	multi := indexOf(entry{amd, plat("linux/amd64")}, entry{armv7, plat("linux/arm/v7")}, entry{arm, plat("linux/arm64/v8")},
		entry{attest, plat("unknown/unknown")})
	for _, tc := range []struct {
		name string
		idx  v1.ImageIndex
		a    arch.Arch
		want v1.Image
		err  string
	}{
		{"amd64 from a multi-platform index", multi, arch.AMD64, amd, ""},
		{"arm64 (listed as arm64/v8)", multi, arch.ARM64, arm, ""},
		{"nested index", indexOf(entry{indexOf(entry{amd, plat("linux/amd64")}, entry{arm, plat("linux/arm64")}), nil}), arch.ARM64, arm, ""},
		{"no platform listed: the config says", indexOf(entry{amd, nil}, entry{arm, nil}), arch.ARM64, arm, ""},
		{"no platform anywhere: taken", indexOf(entry{bare, nil}), arch.ARM64, bare, ""},
		{"amd64 only", indexOf(entry{amd, plat("linux/amd64")}, entry{attest, plat("unknown/unknown")}), arch.ARM64, nil,
			"img has no linux/arm64 image (it has linux/amd64): --arch amd64 takes its linux/amd64 image"},
		{"nothing ops builds for", indexOf(entry{armv7, plat("linux/arm/v7")}), arch.AMD64, nil,
			"img has no linux/amd64 image (it has linux/arm/v7); ops builds linux/amd64 and linux/arm64 images"},
		{"platform listed but the config disagrees", indexOf(entry{amd, plat("linux/arm64")}), arch.ARM64, nil,
			"img is a linux/amd64 image, not linux/arm64: --arch amd64 takes its linux/amd64 image"},
		{"empty index", empty.Index, arch.AMD64, nil, "img has no linux/amd64 image (it lists no platforms)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PickImage("img", tc.idx, platformOf(tc.a))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if digest(t, got) != digest(t, tc.want) {
				t.Fatalf("picked %s, want %s", digest(t, got), digest(t, tc.want))
			}
		})
	}
}

// TestLoadImageArch: every source of images takes the target
// architecture's, from a registry (in-process), an OCI layout and a
// docker-archive tarball, and a single image of another architecture is
// one line naming both.
func TestLoadImageArch(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	amd := randomImage(t, "linux", "amd64")
	arm := randomImage(t, "linux", "arm64")
	multi := indexOf(entry{amd, plat("linux/amd64")}, entry{arm, plat("linux/arm64/v8")})
	multiRef, _ := name.ParseReference(reg + "/multi/app:1")
	if err := remote.WriteIndex(multiRef, multi); err != nil {
		t.Fatal(err)
	}
	armRef, _ := name.ParseReference(reg + "/single/arm:1")
	if err := remote.Write(armRef, arm); err != nil {
		t.Fatal(err)
	}
	lay := filepath.Join(t.TempDir(), "layout")
	if _, err := layout.Write(lay, multi); err != nil {
		t.Fatal(err)
	}
	armTar := filepath.Join(t.TempDir(), "arm.tar")
	if err := tarball.WriteToFile(armTar, armRef, arm); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src  string
		a    arch.Arch
		want v1.Image
		err  string
	}{
		{reg + "/multi/app:1", arch.AMD64, amd, ""},
		{reg + "/multi/app:1", arch.ARM64, arm, ""},
		{lay, arch.AMD64, amd, ""},
		{lay, arch.ARM64, arm, ""},
		{reg + "/single/arm:1", arch.ARM64, arm, ""},
		{reg + "/single/arm:1", arch.AMD64, nil, reg + "/single/arm:1 is a linux/arm64 image, not linux/amd64: --arch arm64 takes its linux/arm64 image"},
		{armTar, arch.AMD64, nil, armTar + " is a linux/arm64 image, not linux/amd64: --arch arm64 takes its linux/arm64 image"},
	} {
		got, err := Registry{Arch: tc.a}.LoadImage(ctx, tc.src)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s for %s: %v, want %q", tc.src, tc.a, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s for %s: %v", tc.src, tc.a, err)
			continue
		}
		if tc.src == armTar {
			continue // a tarball holds the layers, not the manifest
		}
		if digest(t, got) != digest(t, tc.want) {
			t.Errorf("%s for %s: picked %s", tc.src, tc.a, digest(t, got))
		}
	}
}

// TestWrittenImagesArch: the images ops writes say their platform, and a
// package pulled into another architecture's store is refused in one
// line; into its own it lands in local_packages/<arch>/.
func TestWrittenImagesArch(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "tool_1")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, ManifestFile), []byte(`{"Program":"tool_1/tool","Version":"1"}`), 0o644)
	os.WriteFile(filepath.Join(src, "tool"), []byte("program"), 0o755)
	disk := filepath.Join(t.TempDir(), "server")
	os.WriteFile(disk, make([]byte, 512), 0o644)
	for _, a := range arch.All() {
		pkgImg, err := PackageImage(src, Package{Name: "tool", Version: "1"}, a)
		if err != nil {
			t.Fatal(err)
		}
		diskImg, err := DiskImage(disk, a)
		if err != nil {
			t.Fatal(err)
		}
		for what, img := range map[string]v1.Image{"package": pkgImg, "disk": diskImg} {
			cf, err := img.ConfigFile()
			if err != nil || cf.OS != "linux" || cf.Architecture != string(a) {
				t.Errorf("%s image for %s says %s/%s %v", what, a, cf.OS, cf.Architecture, err)
			}
		}
		ref := reg + "/team/tool:" + string(a)
		if _, err := (Registry{}).Push(ctx, pkgImg, ref); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	arm := Store{Home: home, Arch: arch.ARM64}
	p, dir, err := Registry{}.PullPackage(ctx, reg+"/team/tool:arm64", arm)
	if err != nil {
		t.Fatal(err)
	}
	if p.Ref() != "tool:1" || p.Arch != "arm64" || dir != filepath.Join(home, "local_packages", "arm64", "tool_1") {
		t.Fatalf("pulled %+v into %s", p, dir)
	}
	_, _, err = Registry{}.PullPackage(ctx, reg+"/team/tool:amd64", arm)
	if want := reg + "/team/tool:amd64 is a linux/amd64 image, not linux/arm64: --arch amd64 takes its linux/amd64 image"; err == nil || err.Error() != want {
		t.Fatalf("pull of another architecture: %v, want %q", err, want)
	}
}
