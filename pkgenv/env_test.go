package pkgenv

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/elfdeps"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
)

// TestRepoURLs: the default repository, then config.json's URLs, then
// the override (the environment's) win, each field on its own.
func TestRepoURLs(t *testing.T) {
	for _, tc := range []struct {
		name           string
		c              *lepton.Config
		over           URLs
		manifest, base string
	}{
		{"default", nil, URLs{}, packages.DefaultManifestURL, ""},
		{"config", &lepton.Config{PackageManifestURL: "file:///c/m.json", PackageBaseURL: "file:///c/"}, URLs{}, "file:///c/m.json", "file:///c/"},
		{"override", nil, URLs{Manifest: "file:///o/m.json", Base: "file:///o/"}, "file:///o/m.json", "file:///o/"},
		{"override wins", &lepton.Config{PackageManifestURL: "file:///c/m.json", PackageBaseURL: "file:///c/"}, URLs{Manifest: "file:///o/m.json"},
			"file:///o/m.json", "file:///c/"},
	} {
		e, err := New(packages.Store{Home: "/home/u/.ops", Arch: "amd64"}, tc.over).For(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if e.Repo.ManifestURL != tc.manifest || e.Repo.BaseURL != tc.base {
			t.Errorf("%s: manifest %q base %q, want %q %q", tc.name, e.Repo.ManifestURL, e.Repo.BaseURL, tc.manifest, tc.base)
		}
		if e.Repo.CacheFile != "/home/u/.ops/packages/manifest.json" || e.Store.Arch != "amd64" {
			t.Errorf("%s: store %+v, index cache %s", tc.name, e.Store, e.Repo.CacheFile)
		}
	}
}

// staticELF is a static ELF program of the host (the Go tool).
func staticELF(t *testing.T) string {
	t.Helper()
	p := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if os.Getenv("GOROOT") == "" {
		p = "/usr/local/go/bin/go"
	}
	if _, err := elfdeps.ReadELF(p); err != nil {
		t.Skipf("no ELF program to package: %v", err)
	}
	return p
}

// TestLocalPackage makes a local package from a host program (FromRun),
// finds it (Resolve, Installed), runs it (Input) and clones it with the
// user's arguments and environment (Clone).
func TestLocalPackage(t *testing.T) {
	ctx := context.Background()
	e := New(packages.Store{Home: t.TempDir(), Arch: arch.Host()}, URLs{Manifest: "file:///nonexistent/manifest.json"})
	prog := staticELF(t)
	dir, err := FromRun(e.Store, prog, "tool", "1", &lepton.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(e.Store.LocalDir(), "tool_1"); dir != want {
		t.Fatalf("FromRun made %s, want %s", dir, want)
	}
	if got, p, err := e.Resolve(ctx, "tool:1", true); err != nil || got != dir || p.Ref() != "tool:1" {
		t.Fatalf("Resolve: %s %s %v", got, p.Ref(), err)
	}
	for _, tc := range []struct {
		name  string
		local bool
		err   string
	}{
		{"tool:1", true, ""},
		{"tool_1", true, ""},
		{"tool:2", true, "local packages: no package tool:2"},
		{"tool:1", false, "namespace/name:version"},
		{"ns/tool:1", false, "is not downloaded"},
	} {
		got, err := e.Installed(tc.name, tc.local)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Installed(%q, %v): %v, want %q", tc.name, tc.local, err, tc.err)
			}
		} else if err != nil || got != dir {
			t.Errorf("Installed(%q, %v): %s %v, want %s", tc.name, tc.local, got, err, dir)
		}
	}
	cwd := t.TempDir()
	in, p, err := e.Input(ctx, "tool:1", true, &lepton.Config{Args: []string{"version"}}, cwd)
	if err != nil {
		t.Fatal(err)
	}
	if p.Ref() != "tool:1" || in.Program != filepath.Join(dir, "go") || in.ProgramGuest != "/go" || in.Dir != cwd ||
		!reflect.DeepEqual(in.Argv, []string{"go"}) || !reflect.DeepEqual(in.Config.Args, []string{"version"}) {
		t.Errorf("Input: %s %+v", p.Ref(), in)
	}

	clone, err := Clone(e.Store, dir, "mytool", "2", &lepton.Config{Args: []string{"env"}, Env: map[string]string{"A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Program, Version string
		Args             []string
		Env              map[string]string
	}
	b, err := os.ReadFile(filepath.Join(clone, packages.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	if man.Program != "mytool_2/go" || man.Version != "2" || !reflect.DeepEqual(man.Args, []string{"go", "env"}) || man.Env["A"] != "1" {
		t.Errorf("clone's manifest %+v", man)
	}
	if _, err := os.Stat(filepath.Join(clone, "go")); err != nil {
		t.Errorf("clone lacks the program: %v", err)
	}
}
