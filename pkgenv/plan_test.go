package pkgenv

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
)

// TestPlan: the package's program, arguments first, its environment
// under the user's, its Debugflags before the user's new ones, its
// sysroot as the root layer, and the script named first copied from the
// current folder.
func TestPlan(t *testing.T) {
	pkg := t.TempDir()
	writeTestFile(t, filepath.Join(pkg, "node"), []byte("prog"))
	writeTestFile(t, filepath.Join(pkg, "sysroot", "usr", "bin", "tool"), []byte("prog"))
	writeTestFile(t, filepath.Join(pkg, "lib", "x.js"), []byte("x"))
	if err := os.Symlink("usr/bin", filepath.Join(pkg, "sysroot", "bin")); err != nil {
		t.Fatal(err)
	}
	cwd := t.TempDir()
	writeTestFile(t, filepath.Join(cwd, "hi.js"), []byte("hi"))
	type want struct {
		program, guest string
		argv           []string
		env            map[string]string
		debug          []string
		files          []string
		layers         int
	}
	for _, tc := range []struct {
		name     string
		manifest string
		user     lepton.Config
		want     want
		err      string
	}{
		{"relative program", `{"Program": "node_20/node", "Args": ["node"], "Env": {"A": "pkg", "B": "pkg"}, "Debugflags": ["trace"], "Dirs": ["lib"]}`,
			lepton.Config{Args: []string{"hi.js"}, Env: map[string]string{"B": "user"}, Debugflags: []string{"trace", "syscall_summary"}},
			want{filepath.Join(pkg, "node"), "/node", []string{"node"}, map[string]string{"A": "pkg", "B": "user"},
				[]string{"trace", "syscall_summary"}, []string{"hi.js"}, 2}, ""},
		{"program in the sysroot, through a link", `{"Program": "/bin/tool"}`, lepton.Config{},
			want{filepath.Join(pkg, "sysroot", "usr", "bin", "tool"), "/usr/bin/tool", []string{"tool"}, map[string]string{}, nil, nil, 1}, ""},
		{"no copy", `{"Program": "node_20/node", "Args": ["node"]}`, lepton.Config{Args: []string{"hi.js"}, DisableArgsCopy: true},
			want{filepath.Join(pkg, "node"), "/node", []string{"node"}, map[string]string{}, nil, nil, 1}, ""},
		{"no program", `{"Args": ["x"]}`, lepton.Config{}, want{}, "no Program"},
		{"program missing", `{"Program": "/bin/none"}`, lepton.Config{}, want{}, "is not in the package"},
	} {
		writeTestFile(t, filepath.Join(pkg, packages.ManifestFile), []byte(tc.manifest))
		in, err := Plan(pkg, &tc.user, cwd)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := want{in.Program, in.ProgramGuest, in.Argv, in.Config.Env, in.Config.Debugflags, in.Config.Files, len(in.Layers)}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
		if in.Dir != cwd || !in.NoDeps {
			t.Errorf("%s: Dir %s NoDeps %v", tc.name, in.Dir, in.NoDeps)
		}
	}
}
