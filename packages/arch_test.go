package packages

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
)

// TestPackageTarget: an index entry's arch field as nanovms/ops writes it
// (x86_64, arm64), under either name, and none (amd64).
func TestPackageTarget(t *testing.T) {
	for _, tc := range []struct {
		field string
		want  arch.Arch
		ok    bool
	}{
		{"", arch.AMD64, true},
		{"x86_64", arch.AMD64, true},
		{"amd64", arch.AMD64, true},
		{"arm64", arch.ARM64, true},
		{"aarch64", arch.ARM64, true},
		{"riscv64", "", false},
	} {
		got, ok := Package{Name: "n", Version: "1", Arch: tc.field}.Target()
		if got != tc.want || ok != tc.ok {
			t.Errorf("arch %q: %q %v, want %q %v", tc.field, got, ok, tc.want, tc.ok)
		}
	}
	for a, want := range map[arch.Arch]string{arch.AMD64: "x86_64", arch.ARM64: "arm64"} {
		if got := IndexArch(a); got != want {
			t.Errorf("IndexArch(%s) = %q, want %q", a, got, want)
		}
	}
}

// TestForArch keeps one architecture's entries of a mixed index, in order.
func TestForArch(t *testing.T) {
	ix := []Package{
		{Namespace: "eyberg", Name: "node", Version: "20", Arch: "x86_64"},
		{Namespace: "eyberg", Name: "node", Version: "20", Arch: "arm64"},
		{Namespace: "eyberg", Name: "redis", Version: "7"},
		{Namespace: "eyberg", Name: "php", Version: "8", Arch: "arm64"},
		{Namespace: "eyberg", Name: "odd", Version: "1", Arch: "s390x"},
	}
	for _, tc := range []struct {
		a    arch.Arch
		want []string
	}{
		{arch.AMD64, []string{"eyberg/node:20 x86_64", "eyberg/redis:7 "}},
		{arch.ARM64, []string{"eyberg/node:20 arm64", "eyberg/php:8 arm64"}},
	} {
		var got []string
		for _, p := range ForArch(ix, tc.a) {
			got = append(got, p.Ref()+" "+p.Arch)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.a, got, tc.want)
		}
	}
}

// TestPackageURL: the tarball's address per architecture, as nanovms/ops
// fetches it.
func TestPackageURL(t *testing.T) {
	r := Repo{ManifestURL: "https://repo.ops.city/v2/manifest.json"}
	for _, tc := range []struct {
		repo Repo
		arch string
		want string
	}{
		{r, "x86_64", "https://repo.ops.city/v2/packages/eyberg/node/20.5.0.tar.gz"},
		{r, "", "https://repo.ops.city/v2/packages/eyberg/node/20.5.0.tar.gz"},
		{r, "arm64", "https://repo.ops.city/v2/packages/eyberg/node/20.5.0/arm64.tar.gz"},
		{Repo{BaseURL: "file:///srv/pkgs/"}, "arm64", "file:///srv/pkgs/eyberg/node/20.5.0/arm64.tar.gz"},
		{Repo{BaseURL: "file:///srv/pkgs"}, "x86_64", "file:///srv/pkgs/eyberg/node/20.5.0.tar.gz"},
	} {
		p := Package{Namespace: "eyberg", Name: "node", Version: "20.5.0", Arch: tc.arch}
		if got := tc.repo.packageURL(p); got != tc.want {
			t.Errorf("%+v arch %q: %s, want %s", tc.repo, tc.arch, got, tc.want)
		}
	}
}

// TestStorePaths: each architecture's folders, laid out as nanovms/ops lays
// them out, and one index cache for all.
func TestStorePaths(t *testing.T) {
	p := Package{Namespace: "eyberg", Name: "node", Version: "20"}
	for _, tc := range []struct {
		a                        arch.Arch
		dir, local, localOf, idx string
	}{
		{arch.AMD64, "/h/packages/amd64/eyberg/node_20", "/h/local_packages/amd64", "/h/local_packages/amd64/node_20", "/h/packages/manifest.json"},
		{arch.ARM64, "/h/packages/arm64/eyberg/node_20", "/h/local_packages/arm64", "/h/local_packages/arm64/node_20", "/h/packages/manifest.json"},
	} {
		s := Store{Home: "/h", Arch: tc.a}
		got := []string{s.Dir(p), s.LocalDir(), s.LocalDirOf(p), s.IndexCache()}
		if want := []string{tc.dir, tc.local, tc.localOf, tc.idx}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %q, want %q", tc.a, got, want)
		}
	}
}

// TestStoreInstallArch downloads an arm64 package from its arm64 address
// into packages/arm64/, lists local packages under the index's name for
// the architecture, and refuses to put a package into another
// architecture's folder.
func TestStoreInstallArch(t *testing.T) {
	f := newRepo(t)
	body := tgz(t, []ent{
		{name: "hello_1.0/package.manifest", body: `{"Program":"hello_1.0/hello","Version":"1.0"}`},
		{name: "hello_1.0/hello", body: "ELF"},
	})
	armPkg := f.add(t, Package{Namespace: "ns", Name: "hello", Version: "1.0", Arch: "arm64"}, body, "")
	// f.add serves the amd64 address; an arm64 package is at its own.
	f.files["/v2/packages/ns/hello/1.0/arm64.tar.gz"] = body
	delete(f.files, "/v2/packages/ns/hello/1.0.tar.gz")
	home := t.TempDir()
	r := Repo{ManifestURL: f.srv.URL + "/v2/manifest.json"}
	ctx := context.Background()
	arm := Store{Home: home, Arch: arch.ARM64}
	dir, err := arm.Install(ctx, r, armPkg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(home, "packages", "arm64", "ns", "hello_1.0") || f.hits["/v2/packages/ns/hello/1.0/arm64.tar.gz"] != 1 {
		t.Fatalf("installed at %s, hits %v", dir, f.hits)
	}
	amd := Store{Home: home, Arch: arch.AMD64}
	for _, tc := range []struct {
		s   Store
		p   Package
		err string
	}{
		{amd, armPkg, "ns/hello:1.0 is built for arm64, not amd64"},
		{arm, Package{Namespace: "ns", Name: "x", Version: "1", Arch: "x86_64"}, "ns/x:1 is built for x86_64, not arm64"},
		{arm, Package{Namespace: "ns", Name: "x", Version: "1"}, "ns/x:1 is built for x86_64, not arm64"},
		{arm, Package{Namespace: "ns", Name: "x", Version: "1", Arch: "s390x"}, "ns/x:1 is built for s390x, not arm64"},
	} {
		if _, err := tc.s.Install(ctx, r, tc.p, nil); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s into %s: %v, want %q", tc.p.Ref(), tc.s.Arch, err, tc.err)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "packages", "amd64")); !os.IsNotExist(err) {
		t.Errorf("a refused install made packages/amd64: %v", err)
	}

	os.MkdirAll(filepath.Join(arm.LocalDir(), "tool_2"), 0o755)
	os.WriteFile(filepath.Join(arm.LocalDir(), "tool_2", ManifestFile), []byte(`{"Version":"2"}`), 0o644)
	for _, tc := range []struct {
		s    Store
		want string
	}{{arm, "tool:2 arm64"}, {amd, ""}} {
		pkgs, err := tc.s.Local()
		var got []string
		for _, p := range pkgs {
			got = append(got, p.Ref()+" "+p.Arch)
		}
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("%s local packages %q %v, want %q", tc.s.Arch, got, err, tc.want)
		}
	}
}
