package compose

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
