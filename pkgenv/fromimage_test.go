package pkgenv

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
)

// TestChooseProgram: the first element of ENTRYPOINT and CMD that names
// an ELF is the program; scripts before it are skipped with a note.
func TestChooseProgram(t *testing.T) {
	root := t.TempDir()
	elf, err := os.ReadFile(staticELF(t))
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range map[string][]byte{
		"usr/bin/app":       elf,
		"srv/rel/app":       elf,
		"docker-entry.sh":   []byte("#!/bin/sh\nexec \"$@\"\n"),
		"usr/local/bin/run": []byte("#!/bin/sh\n"),
	} {
		writeTestFile(t, filepath.Join(root, p), data)
	}
	for _, tc := range []struct {
		argv     []string
		prog     string
		args     []string
		note     bool
		err      string
		workdir  string
		pathList string
	}{
		{argv: []string{"/usr/bin/app", "-x"}, prog: "/usr/bin/app", args: []string{"/usr/bin/app", "-x"}},
		{argv: []string{"app"}, prog: "/usr/bin/app", args: []string{"app"}},
		{argv: []string{"/docker-entry.sh", "app", "serve"}, prog: "/usr/bin/app", args: []string{"app", "serve"}, note: true},
		{argv: []string{"run", "app"}, prog: "/usr/bin/app", args: []string{"app"}, note: true},
		{argv: []string{"rel/app"}, workdir: "/srv", prog: "/srv/rel/app", args: []string{"rel/app"}},
		{argv: []string{"app"}, pathList: "/nowhere", err: "name no ELF program"},
		{argv: nil, err: "no ENTRYPOINT or CMD"},
	} {
		pathList := tc.pathList
		if pathList == "" {
			pathList = defaultPATH
		}
		prog, args, note, err := chooseProgram(root, tc.argv, pathList, tc.workdir)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.argv, err, tc.err)
			}
			continue
		}
		if err != nil || prog != tc.prog || !reflect.DeepEqual(args, tc.args) || (note != "") != tc.note {
			t.Errorf("%q: %s %q note %q %v, want %s %q (note %v)", tc.argv, prog, args, note, err, tc.prog, tc.args, tc.note)
		}
	}
}

func writeTestFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestImagePackageNameVersion: an image's package is named after its last
// path element and versioned by its digest, plus a hash of the service's
// entrypoint and command when it sets them.
func TestImagePackageNameVersion(t *testing.T) {
	for ref, want := range map[string]string{
		"docker.io/library/redis:7":       "image-redis",
		"registry.example.com:5000/a/B_c": "image-b_c",
		"ghcr.io/x/app@sha256:0123":       "image-app",
		"/srv/project/My App.tar":         "image-my-app",
	} {
		if got := imagePackageName(ref); got != want {
			t.Errorf("imagePackageName(%q) = %q, want %q", ref, got, want)
		}
	}
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	plain := imagePackageVersion(d, nil, nil)
	if plain != "sha256-abababababababab" {
		t.Errorf("version %q", plain)
	}
	a := imagePackageVersion(d, []string{"/app"}, nil)
	b := imagePackageVersion(d, nil, []string{"/app"})
	if !strings.HasPrefix(a, plain+"-") || a == b || a != imagePackageVersion(d, []string{"/app"}, nil) {
		t.Errorf("versions %q %q", a, b)
	}
}

// TestImagePackage converts a docker-archive tarball into a local package
// once: a second service with the same image finds it made.
func TestImagePackage(t *testing.T) {
	elf, err := os.ReadFile(staticELF(t))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/server", Mode: 0o755, Size: int64(len(elf))})
	tw.Write(elf)
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/bin/server"}
	cf.Config.Env = []string{"MODE=image"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "server.tar")
	if err := tarball.WriteToFile(archive, nil, img); err != nil {
		t.Fatal(err)
	}

	e := New(packages.Store{Home: t.TempDir(), Arch: "amd64"}, URLs{})
	var said []string
	e.Say = func(line string) { said = append(said, line) }
	ctx := context.Background()
	dir, err := e.ImagePackage(ctx, archive, nil, []string{"--port", "80"})
	if err != nil {
		t.Fatal(err)
	}
	if len(said) != 1 || !strings.Contains(said[0], "is local package image-server:sha256-") {
		t.Errorf("said %q", said)
	}
	again, err := e.ImagePackage(ctx, archive, nil, []string{"--port", "80"})
	if err != nil || again != dir || len(said) != 1 {
		t.Errorf("second conversion: %s %v, said %q", again, err, said)
	}
	in, err := Plan(dir, &lepton.Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if in.ProgramGuest != "/bin/server" || !reflect.DeepEqual(in.Argv, []string{"/bin/server", "--port", "80"}) || in.Config.Env["MODE"] != "image" {
		t.Errorf("plan input %+v, env %v", in, in.Config.Env)
	}
	if _, err := e.ImagePackage(ctx, archive, []string{}, nil); err == nil || !strings.Contains(err.Error(), "entrypoint is empty") {
		t.Errorf("empty entrypoint: %v", err)
	}
}
