package cmd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/internal/testutil"
	"github.com/opsdev/ops/packages"
	"github.com/spf13/cobra"
)

// TestPkgCommandsTakeArch: every ops pkg command (and ops list) takes
// --arch, as nanovms/ops's do.
func TestPkgCommandsTakeArch(t *testing.T) {
	root := NewRoot(&App{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	var cmds []*cobra.Command
	for _, c := range root.Commands() {
		switch c.Name() {
		case "pkg":
			cmds = append(cmds, c.Commands()...)
		case "list", "load":
			cmds = append(cmds, c)
		}
	}
	if len(cmds) < 12 {
		t.Fatalf("found %d pkg commands", len(cmds))
	}
	for _, c := range cmds {
		if c.Flags().Lookup("arch") == nil {
			t.Errorf("%s has no --arch", c.CommandPath())
		}
	}
}

// runOps runs ops's command line in-process: its output, and its error.
func runOps(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &App{Stdout: &out, Stderr: &out}
	root := NewRoot(app)
	root.SetArgs(args)
	_, err := root.ExecuteC()
	if app.release != nil {
		app.release()
	}
	return out.String(), err
}

// TestPkgArch: ops pkg list and search show the chosen architecture's
// packages (the host's by default), and a package the repository has only
// for the other is one line naming both.
func TestPkgArch(t *testing.T) {
	repo := t.TempDir()
	b, _ := json.Marshal(packages.Index{Version: 1, Packages: []packages.Package{
		{Namespace: "eyberg", Name: "node", Version: "20", Arch: "x86_64", Language: "js", Description: "node"},
		{Namespace: "eyberg", Name: "node", Version: "20", Arch: "arm64", Language: "js", Description: "node"},
		{Namespace: "eyberg", Name: "redis", Version: "7", Arch: "x86_64", Language: "c", Description: "redis"},
		{Namespace: "eyberg", Name: "php", Version: "8", Arch: "arm64", Language: "php", Description: "php"},
	}})
	if err := os.WriteFile(filepath.Join(repo, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPS_HOME", t.TempDir())
	t.Setenv("OPS_PACKAGE_MANIFEST_URL", "file://"+filepath.Join(repo, "manifest.json"))
	hostRows := map[arch.Arch]string{arch.AMD64: "node redis", arch.ARM64: "node php"}[arch.Host()]
	for _, tc := range []struct {
		args []string
		rows string // the NAME column
		err  string
	}{
		{[]string{"pkg", "list"}, hostRows, ""},
		{[]string{"list"}, hostRows, ""},
		{[]string{"pkg", "list", "--arch", "amd64"}, "node redis", ""},
		{[]string{"pkg", "list", "--arch", "x86_64"}, "node redis", ""},
		{[]string{"pkg", "list", "--arch", "aarch64"}, "node php", ""},
		{[]string{"pkg", "search", "node", "--arch", "arm64"}, "node", ""},
		{[]string{"pkg", "search", "p", "--arch", "arm64"}, "php", ""},
		{[]string{"pkg", "list", "--arch", "mips"}, "", `Arch (--arch): "mips" is not an architecture ops builds for`},
		{[]string{"pkg", "get", "eyberg/redis:7", "--arch", "arm64"}, "", "eyberg/redis:7 has no arm64 build in the package repository, only amd64 (--arch amd64)"},
		{[]string{"pkg", "contents", "eyberg/php:8", "--arch", "amd64"}, "", "eyberg/php:8 has no amd64 build in the package repository, only arm64 (--arch arm64)"},
		{[]string{"pkg", "contents", "-l", "mine:1", "--arch", "arm64"}, "", "local packages: no package mine:1"},
	} {
		out, err := runOps(t, tc.args...)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var names []string
		for _, l := range lines[1:] {
			names = append(names, strings.Fields(l)[1])
		}
		if strings.Join(names, " ") != tc.rows {
			t.Errorf("%q lists %q, want %q:\n%s", tc.args, names, tc.rows, out)
		}
	}
}

// TestDiskArch: the architecture ops image push labels a disk with is
// its kernel's; a file that is not a Nanos disk is one line.
func TestDiskArch(t *testing.T) {
	t.Setenv("OPS_HOME", t.TempDir())
	rel := testutil.FakeRelease(t, t.TempDir()) // its kernel is this machine's /bin/true
	cfg := filepath.Join(t.TempDir(), "config.json")
	b, _ := json.Marshal(map[string]string{"Kernel": rel.Kernel, "Boot": rel.Boot, "KlibDir": rel.KlibDir})
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runOps(t, "build", "/bin/true", "-c", cfg, "-i", "pushme", "--guest", "nanos"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	app := &App{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	if a, err := diskArch(app, "pushme"); err != nil || a != arch.Host() {
		t.Fatalf("disk of %q %v, want %s", a, err, arch.Host())
	}
	if _, err := diskArch(app, cfg); err == nil || !strings.HasPrefix(err.Error(), cfg+": not a Nanos disk image") {
		t.Fatalf("not a disk: %v", err)
	}
}

// TestImageTree: ops image tree prints a Nanos image's files as
// nanovms/ops does (one a line, indented by depth, links with their
// targets); --json the files' paths; --manifest the root tuple.
func TestImageTree(t *testing.T) {
	t.Setenv("OPS_HOME", t.TempDir())
	rel := testutil.FakeRelease(t, t.TempDir())
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "data", "sub", "f.txt"), "x")
	if err := os.Symlink("sub/f.txt", filepath.Join(dir, "data", "link")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // Dirs are read from the current folder
	cfg := filepath.Join(dir, "config.json")
	b, _ := json.Marshal(map[string]any{"Kernel": rel.Kernel, "Boot": rel.Boot, "KlibDir": rel.KlibDir, "Dirs": []string{"data"}})
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runOps(t, "build", "/bin/true", "-c", cfg, "-i", "treeme", "--guest", "nanos"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := runOps(t, "image", "tree", "treeme")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/\n", "\n|   data\n|   |   link -> sub/f.txt\n|   |   sub\n|   |   |   f.txt\n", "\n|   etc\n", "\n|   |   passwd\n", "\n|   true\n"} {
		if !strings.HasPrefix(out, want) && !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	out, err = runOps(t, "image", "tree", "treeme", "--json")
	var files []string
	if err != nil || json.Unmarshal([]byte(out), &files) != nil || !slices.Contains(files, "/data/sub/f.txt") || !slices.Contains(files, "/data/link") || slices.Contains(files, "/data") {
		t.Errorf("--json: %v %q", err, out)
	}
	if out, err = runOps(t, "image", "tree", "treeme", "--manifest"); err != nil || !strings.Contains(out, "program:/true") {
		t.Errorf("--manifest: %v %q", err, out)
	}
}
