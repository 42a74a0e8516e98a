package pkgenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
)

// otherArch is the architecture ops builds for that this machine is not.
func otherArch() arch.Arch {
	if arch.Host() == arch.ARM64 {
		return arch.AMD64
	}
	return arch.ARM64
}

// TestEnvFor: a config's Arch picks the store's folders and the
// registry's platform; none keeps the environment's; a bad one is the
// config's one line.
func TestEnvFor(t *testing.T) {
	base := New(packages.Store{Home: "/h", Arch: arch.AMD64}, URLs{})
	for _, tc := range []struct {
		c    *lepton.Config
		want arch.Arch
		err  string
	}{
		{nil, arch.AMD64, ""},
		{&lepton.Config{}, arch.AMD64, ""},
		{&lepton.Config{Arch: "aarch64"}, arch.ARM64, ""},
		{&lepton.Config{Arch: "arm64"}, arch.ARM64, ""},
		{&lepton.Config{Arch: "x86_64"}, arch.AMD64, ""},
		{&lepton.Config{Arch: "mips"}, "", `Arch (--arch): "mips" is not an architecture ops builds for`},
	} {
		e, err := base.For(tc.c)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: %v, want %q", tc.c, err, tc.err)
			}
			continue
		}
		if err != nil || e.Arch() != tc.want || e.Store.Arch != tc.want || e.Registry.Arch != tc.want {
			t.Errorf("%+v: store %s registry %s %v, want %s", tc.c, e.Store.Arch, e.Registry.Arch, err, tc.want)
		}
		if e.Store.LocalDir() != filepath.Join("/h", "local_packages", string(tc.want)) {
			t.Errorf("%+v: local packages in %s", tc.c, e.Store.LocalDir())
		}
	}
	if base.Arch() != arch.AMD64 {
		t.Fatal("For changed the environment it was called on")
	}
}

// fileRepo writes a repository of packages for file:// under dir, each
// package's tarball at its architecture's address.
func fileRepo(t *testing.T, dir string, pkgs []packages.Package) URLs {
	t.Helper()
	var ix packages.Index
	for _, p := range pkgs {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for name, body := range map[string]string{
			p.DirName() + "/package.manifest": `{"Program":"` + p.DirName() + `/prog","Version":"` + p.Version + `"}`,
			p.DirName() + "/prog":             "program for " + p.Arch,
		} {
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg})
			tw.Write([]byte(body))
		}
		tw.Close()
		zw.Close()
		sum := sha256.Sum256(buf.Bytes())
		p.SHA256 = hex.EncodeToString(sum[:])
		rel := filepath.Join("packages", p.Namespace, p.Name, p.Version+".tar.gz")
		if a, _ := p.Target(); a == arch.ARM64 {
			rel = filepath.Join("packages", p.Namespace, p.Name, p.Version, "arm64.tar.gz")
		}
		writeTestFile(t, filepath.Join(dir, rel), buf.Bytes())
		ix.Packages = append(ix.Packages, p)
	}
	b, _ := json.Marshal(ix)
	writeTestFile(t, filepath.Join(dir, "manifest.json"), b)
	return URLs{Manifest: "file://" + filepath.Join(dir, "manifest.json"), Base: "file://" + filepath.Join(dir, "packages")}
}

// TestResolveArch: one index for both architectures; each environment
// lists and downloads its own architecture's packages, from its own
// address into its own folder, and a package the repository has only for
// the other is one line naming both.
func TestResolveArch(t *testing.T) {
	urls := fileRepo(t, t.TempDir(), []packages.Package{
		{Namespace: "eyberg", Name: "node", Version: "20", Arch: "x86_64", Language: "js"},
		{Namespace: "eyberg", Name: "node", Version: "20", Arch: "arm64", Language: "js"},
		{Namespace: "eyberg", Name: "redis", Version: "7"},
		{Namespace: "eyberg", Name: "php", Version: "8", Arch: "arm64"},
	})
	home := t.TempDir()
	ctx := context.Background()
	for _, tc := range []struct {
		a      arch.Arch
		listed []string
		got    map[string]string // name -> the program's contents, or the error
	}{
		{arch.AMD64, []string{"eyberg/node:20", "eyberg/redis:7"}, map[string]string{
			"eyberg/node:20":  "program for x86_64",
			"eyberg/redis:7":  "program for ",
			"eyberg/php":      "eyberg/php has no amd64 build in the package repository, only arm64 (--arch arm64)",
			"eyberg/zzzzzz:1": "no package eyberg/zzzzzz:1",
		}},
		{arch.ARM64, []string{"eyberg/node:20", "eyberg/php:8"}, map[string]string{
			"eyberg/node:20": "program for arm64",
			"eyberg/php":     "program for arm64",
			"eyberg/redis:7": "eyberg/redis:7 has no arm64 build in the package repository, only amd64 (--arch amd64)",
		}},
	} {
		e := New(packages.Store{Home: home, Arch: tc.a}, urls)
		pkgs, err := e.Index(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, p := range pkgs {
			listed = append(listed, p.Ref())
		}
		if !reflect.DeepEqual(listed, tc.listed) {
			t.Errorf("%s lists %q, want %q", tc.a, listed, tc.listed)
		}
		for name, want := range tc.got {
			dir, _, err := e.Resolve(ctx, name, false)
			var got string
			if err != nil {
				got = err.Error()
			} else {
				if !strings.HasPrefix(dir, filepath.Join(home, "packages", string(tc.a))+"/") {
					t.Errorf("%s %s: in %s", tc.a, name, dir)
				}
				b, _ := os.ReadFile(filepath.Join(dir, "prog"))
				got = string(b)
			}
			if got != want {
				t.Errorf("%s %s: %q, want %q", tc.a, name, got, want)
			}
		}
	}
}

// TestLocalPackageArch: local packages are made for the architecture
// their program is built for; a program, a package folder or an image of
// another is refused, and asking for a local package of the other
// architecture says where it is.
func TestLocalPackageArch(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	host := New(packages.Store{Home: home, Arch: arch.Host()}, URLs{Manifest: "file:///nonexistent/manifest.json"})
	other := host.ForArch(otherArch())
	prog := staticELF(t)
	dir, err := FromRun(host.Store, prog, "tool", "1", &lepton.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, "local_packages", string(arch.Host()), "tool_1"); dir != want {
		t.Fatalf("made %s, want %s", dir, want)
	}
	h, o := arch.Host(), otherArch()
	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{
		{"from-run for the other arch", func() error {
			_, err := FromRun(other.Store, prog, "tool", "2", &lepton.Config{})
			return err
		}, prog + " is an " + string(h) + " program; a package for " + string(o) + " cannot hold it (--arch " + string(h) + " makes an " + string(h) + " package)"},
		{"load from the other arch", func() error {
			_, _, err := other.Resolve(ctx, "tool:1", true)
			return err
		}, "local package tool:1 is built for " + string(h) + ", not " + string(o) + " (--arch " + string(h) + ")"},
		{"a missing local package", func() error {
			_, _, err := other.Resolve(ctx, "gone:1", true)
			return err
		}, "local packages: no package gone:1"},
		{"add to the other arch", func() error {
			_, err := other.AddLocal(dir, "copy", "1")
			return err
		}, dir + ": its program tool_1/go is an " + string(h) + " program; a package for " + string(o) + " cannot hold it (--arch " + string(h) + " makes an " + string(h) + " package)"},
		{"add to its own arch", func() error {
			_, err := host.AddLocal(dir, "copy", "1")
			return err
		}, ""},
		{"an image of another arch", func() error {
			img, err := mutate.ConfigFile(empty.Image, mustConfig(t, string(h)))
			if err != nil {
				return err
			}
			_, _, err = FromImage(other.Store, img, FromImageOptions{Name: "img", Version: "1"})
			return err
		}, "the image is a linux/" + string(h) + " image, not linux/" + string(o) + ": --arch " + string(h) + " takes its linux/" + string(h) + " image"},
	} {
		err := tc.do()
		if (err == nil) != (tc.want == "") || (err != nil && err.Error() != tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := os.Stat(other.Store.LocalDir()); err == nil {
		if ents, _ := os.ReadDir(other.Store.LocalDir()); len(ents) > 0 {
			t.Errorf("refused packages left %v in %s", ents, other.Store.LocalDir())
		}
	}
}

// mustConfig is an image config for linux/goarch.
func mustConfig(t *testing.T, goarch string) *v1.ConfigFile {
	t.Helper()
	cf, err := empty.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goarch
	return cf
}
