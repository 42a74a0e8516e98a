package compose

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
	"github.com/opsdev/ops/pkgenv"
)

// TestPackages: a service's local package is found before anything is
// built, and planInput runs it with the service's config from the
// compose file's folder; a program service needs no package.
func TestPackages(t *testing.T) {
	home := t.TempDir()
	env := pkgenv.New(packages.Store{Home: home, Arch: "amd64"}, pkgenv.URLs{})
	pkg := env.Store.LocalDirOf(packages.Package{Name: "tool", Version: "1"})
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"tool": "prog", packages.ManifestFile: `{"Program": "tool_1/tool", "Args": ["tool"]}`} {
		if err := os.WriteFile(filepath.Join(pkg, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	f, err := Parse([]byte(`
services:
  tool:
    x-ops: {package: "tool:1", local: true}
    command: [--serve]
  prog:
    x-ops: {program: ./p}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	order := []string{"prog", "tool"}
	u := &up{file: f, images: map[string]string{}, opts: UpOptions{Home: lepton.Home{Dir: home}, Packages: env}}
	if err := u.packages(context.Background(), order); err != nil {
		t.Fatal(err)
	}
	if len(u.images) != 1 || u.images["tool"] != pkg {
		t.Fatalf("packages %v, want tool: %s", u.images, pkg)
	}
	c, err := f.serviceConfig(f.replicasOf("tool")[0], "")
	if err != nil {
		t.Fatal(err)
	}
	in, err := u.planInput("tool", c)
	if err != nil {
		t.Fatal(err)
	}
	if in.Program != filepath.Join(pkg, "tool") || in.Dir != dir || strings.Join(in.Config.Args, " ") != "--serve" {
		t.Errorf("plan input %+v (args %q)", in, in.Config.Args)
	}

	u = &up{file: f, images: map[string]string{}}
	if err := u.packages(context.Background(), order); err == nil || !strings.Contains(err.Error(), "service tool: packages and images cannot be resolved here") {
		t.Errorf("without Packages: %v", err)
	}
}

func TestImageRef(t *testing.T) {
	for ref, want := range map[string]string{
		"redis:7":             "redis:7",
		"./app.tar":           "/p/app.tar",
		"app.tar":             "/p/app.tar",
		"../layout":           "/layout",
		"/srv/app.tar":        "/srv/app.tar",
		"ghcr.io/team/app:v1": "ghcr.io/team/app:v1",
	} {
		if got := imageRef("/p", ref); got != want {
			t.Errorf("imageRef(%q) = %q, want %q", ref, got, want)
		}
	}
}

// TestPackagesArch: a service's platform: is its architecture: its
// package comes from that architecture's local packages (a package there
// is only for the other one: one line naming both), its config says it
// (a config that says another is an error), and a service without one
// takes its config's.
func TestPackagesArch(t *testing.T) {
	home := t.TempDir()
	env := pkgenv.New(packages.Store{Home: home, Arch: arch.AMD64}, pkgenv.URLs{})
	for _, a := range []arch.Arch{arch.AMD64, arch.ARM64} {
		pkg := env.ForArch(a).Store.LocalDirOf(packages.Package{Name: "tool", Version: "1"})
		if err := os.MkdirAll(pkg, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"tool": "prog", packages.ManifestFile: `{"Program": "tool_1/tool"}`} {
			if err := os.WriteFile(filepath.Join(pkg, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	only := env.ForArch(arch.AMD64).Store.LocalDirOf(packages.Package{Name: "old", Version: "1"})
	os.MkdirAll(only, 0o755)
	os.WriteFile(filepath.Join(only, packages.ManifestFile), []byte(`{"Program": "old_1/old"}`), 0o644)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "arm.json"), []byte(`{"Arch": "aarch64"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "amd.json"), []byte(`{"Arch": "amd64"}`), 0o644)
	f, err := Parse([]byte(`
services:
  arm:
    x-ops: {package: "tool:1", local: true}
    platform: linux/arm64
  amd:
    x-ops: {package: "tool:1", local: true}
    platform: linux/amd64
  byconfig:
    x-ops: {package: "tool:1", local: true, config: arm.json}
  agree:
    x-ops: {package: "tool:1", local: true, config: arm.json}
    platform: linux/arm64
  clash:
    x-ops: {package: "tool:1", local: true, config: amd.json}
    platform: linux/arm64
  missing:
    x-ops: {package: "old:1", local: true}
    platform: linux/arm64
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		service, arch, err string
	}{
		{"arm", "arm64", ""},
		{"amd", "amd64", ""},
		{"byconfig", "arm64", ""},
		{"agree", "arm64", ""},
		{"clash", "", "service clash: platform: linux/arm64, but its config (" + filepath.Join(dir, "amd.json") + ") says Arch amd64"},
		{"missing", "", "service missing: local package old:1 is built for amd64, not arm64 (--arch amd64)"},
	} {
		u := &up{file: f, images: map[string]string{}, opts: UpOptions{Home: lepton.Home{Dir: home}, Packages: env}}
		err := u.packages(context.Background(), []string{tc.service})
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: %v, want %q", tc.service, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.service, err)
			continue
		}
		if want := filepath.Join(home, "local_packages", tc.arch, "tool_1"); u.images[tc.service] != want {
			t.Errorf("%s: package %s, want %s", tc.service, u.images[tc.service], want)
		}
		c, err := f.serviceConfig(f.replicasOf(tc.service)[0], "")
		if a, _ := c.Target(); err != nil || string(a) != tc.arch {
			t.Errorf("%s: config for %s %v, want %s", tc.service, a, err, tc.arch)
		}
	}
}
