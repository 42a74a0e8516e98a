package lepton

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opsdev/ops/internal/testutil"
)

// TestLibraryClosure: shared objects placed through Dirs get their own
// libraries, from the image's tree first and then the host, recursively;
// what is found nowhere is reported, not fatal.
func TestLibraryClosure(t *testing.T) {
	testutil.NeedGCC(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.c"), []byte("int a(void){return 1;}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.c"), []byte("int a(void); int b(void){return a();}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "m.c"), []byte("int b(void); int m(void){return b();}\n"), 0o644)
	// Host libraries outside the tree: libclosa (needed by libclosb) lives
	// in a host folder named by libclosb's RUNPATH.
	hostlib := filepath.Join(dir, "hostlib")
	os.MkdirAll(hostlib, 0o755)
	testutil.GCC(t, dir, "-shared", "-fPIC", "-o", "hostlib/libclosa.so", "a.c")
	testutil.GCC(t, dir, "-shared", "-fPIC", "-o", "hostlib/libclosb.so", "b.c", "-Wl,--no-as-needed", "-Lhostlib", "-lclosa", "-Wl,--enable-new-dtags,-rpath,"+hostlib)
	// The tree: a module needing libclosb (from the host, through the
	// module's RUNPATH), libz (from the host's default folders), and one
	// library the tree already holds.
	mods := filepath.Join(dir, "mods")
	os.MkdirAll(filepath.Join(mods, "lib"), 0o755)
	testutil.GCC(t, dir, "-shared", "-fPIC", "-o", "mods/lib/libown.so", "a.c")
	testutil.GCC(t, dir, "-shared", "-fPIC", "-o", "mods/mod.so", "m.c", "-Wl,--no-as-needed", "-Lhostlib", "-lclosb", "-Lmods/lib", "-lown", "-lz",
		"-Wl,--enable-new-dtags,-rpath,"+hostlib+":$ORIGIN/lib")
	os.WriteFile(filepath.Join(mods, "data.txt"), []byte(strings.Repeat("not an ELF\n", 20)), 0o644)
	// A module needing a library that exists nowhere.
	testutil.GCC(t, dir, "-shared", "-fPIC", "-o", "hostlib/libgone.so", "a.c")
	testutil.GCC(t, dir, "-shared", "-fPIC", "-o", "mods/broken.so", "m.c", "-Wl,--no-as-needed", "-Lhostlib", "-lgone")
	os.Remove(filepath.Join(hostlib, "libgone.so"))
	if _, err := os.Stat("/lib/x86_64-linux-gnu/libz.so.1"); err != nil {
		t.Skip("SKIP: no libz.so.1 on the host")
	}

	p, err := newPlan(PlanInput{Config: &Config{Dirs: []string{"mods"}, NoDefaults: true}, Program: "/bin/true", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{hostlib + "/libclosb.so", hostlib + "/libclosa.so", "/lib/x86_64-linux-gnu/libz.so.1"} {
		if _, ok := p.Tree.Get(want); !ok {
			t.Errorf("%s not in the image; added: %v", want, p.Libs)
		}
		if !slices.Contains(p.Libs, want) {
			t.Errorf("%s not listed as added: %v", want, p.Libs)
		}
	}
	// libown is the tree's own, reached through $ORIGIN: not added again.
	for _, l := range p.Libs {
		if strings.Contains(l, "libown") {
			t.Errorf("libown added from the host: %v", p.Libs)
		}
	}
	if len(p.Unresolved) != 1 || !strings.HasPrefix(p.Unresolved[0], "libgone.so (needed by /mods/broken.so)") {
		t.Errorf("unresolved %v", p.Unresolved)
	}
	// The host folder is outside the loader's defaults: the guest finds it
	// through LD_LIBRARY_PATH.
	if got := env(p)["LD_LIBRARY_PATH"]; got != hostlib {
		t.Errorf("LD_LIBRARY_PATH %q, want %q", got, hostlib)
	}
	// A plain dynamic program gets no second copy of anything (the loader
	// is known by its soname).
	plain, err := newPlan(PlanInput{Config: &Config{NoDefaults: true}, Program: "/bin/true", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Libs) != 0 || len(plain.Unresolved) != 0 {
		t.Errorf("closure of /bin/true alone added %v, missed %v", plain.Libs, plain.Unresolved)
	}
}
