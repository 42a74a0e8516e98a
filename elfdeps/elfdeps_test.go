package elfdeps

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/internal/testutil"
)

func guestPaths(d *Deps) []string {
	var out []string
	for _, l := range d.Libs {
		out = append(out, l.Guest)
	}
	return out
}

// TestReadELFGoProgram: Go compresses its DWARF sections; their size in
// the file is smaller than their size in memory.
func TestReadELFGoProgram(t *testing.T) {
	exe, err := os.Executable() // this test binary, built by Go with DWARF
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadELF(exe); err != nil {
		t.Fatal(err)
	}
}

func TestResolveSystemBinary(t *testing.T) {
	// /bin/ls is dynamic on every Debian machine.
	d, err := NewResolver("/").Resolve("/bin/ls", "/ls")
	if err != nil {
		t.Fatal(err)
	}
	if d.Interp == nil || d.Interp.Guest != "/lib64/ld-linux-x86-64.so.2" {
		t.Fatalf("interpreter %+v", d.Interp)
	}
	libs := strings.Join(guestPaths(d), " ")
	if !strings.Contains(libs, "/libc.so.6") {
		t.Fatalf("libc not among %s", libs)
	}
	if strings.Contains(libs, "ld-linux") {
		t.Fatalf("the interpreter is listed again as a library: %s", libs)
	}
}

func TestResolveKinds(t *testing.T) {
	testutil.NeedGCC(t)
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "m.c"), "int f(void); int main(void){return f();}\n")
	testutil.WriteFile(t, filepath.Join(dir, "f.c"), "int f(void){return 0;}\n")
	testutil.WriteFile(t, filepath.Join(dir, "s.c"), "int main(void){return 0;}\n")
	testutil.GCC(t, dir, "-O2", "-static", "-o", "static", "s.c")
	testutil.GCC(t, dir, "-O2", "-static-pie", "-o", "staticpie", "s.c")
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.GCC(t, dir, "-shared", "-fPIC", "-o", "lib/libf.so", "f.c")
	testutil.GCC(t, dir, "-o", "origin", "m.c", "-Llib", "-lf", "-Wl,-rpath,$ORIGIN/lib")
	testutil.GCC(t, dir, "-o", "runpath", "m.c", "-Llib", "-lf", "-Wl,--enable-new-dtags,-rpath,"+filepath.Join(dir, "lib"))
	testutil.GCC(t, dir, "-o", "missing", "m.c", "-Llib", "-lf")

	cases := []struct {
		prog   string
		interp bool
		want   []string // guest paths that must be among the libraries
		err    string
	}{
		{"static", false, nil, ""},
		{"staticpie", false, nil, ""},
		{"origin", true, []string{"/app/lib/libf.so"}, ""},
		{"runpath", true, []string{filepath.Join(dir, "lib", "libf.so")}, ""},
		{"missing", true, nil, "library libf.so, needed by"},
	}
	for _, tc := range cases {
		t.Run(tc.prog, func(t *testing.T) {
			d, err := NewResolver("/").Resolve(filepath.Join(dir, tc.prog), "/app/"+tc.prog)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "searched") {
					t.Fatalf("error %v, want %q naming the dirs searched", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (d.Interp != nil) != tc.interp {
				t.Fatalf("interp %+v", d.Interp)
			}
			got := strings.Join(guestPaths(d), " ")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Fatalf("%s not among %s", w, got)
				}
			}
			if !tc.interp && len(d.Libs) != 0 {
				t.Fatalf("static program has libraries %v", got)
			}
		})
	}
	// A library outside the loader's default dirs is announced, so the
	// plan can set LD_LIBRARY_PATH.
	d, err := NewResolver("/").Resolve(filepath.Join(dir, "origin"), "/app/origin")
	if err != nil || len(d.ExtraDirs) != 1 || d.ExtraDirs[0] != "/app/lib" {
		t.Fatalf("extra dirs %v, %v", d.ExtraDirs, err)
	}
}

// elfHeader crafts a minimal ELF header.
func elfHeader(class elf.Class, machine elf.Machine) []byte {
	b := make([]byte, 64)
	copy(b, elf.ELFMAG)
	b[4] = byte(class)
	b[5] = byte(elf.ELFDATA2LSB)
	b[6] = 1
	binary.LittleEndian.PutUint16(b[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(b[18:], uint16(machine))
	binary.LittleEndian.PutUint32(b[20:], 1)
	if class == elf.ELFCLASS64 {
		binary.LittleEndian.PutUint16(b[52:], 64)
	} else {
		binary.LittleEndian.PutUint16(b[40:], 52)
	}
	return b
}

func TestReadELFBadFiles(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		data []byte
		err  string
	}{
		{"script", []byte("#!/bin/sh\necho hi\n"), "not an ELF"},
		{"empty", nil, "not an ELF"},
		{"truncated", []byte("\x7fELF\x02\x01"), "malformed"},
		{"32-bit", elfHeader(elf.ELFCLASS32, elf.EM_386), "ops runs 64-bit x86-64 (amd64) and aarch64 (arm64) programs"},
		{"riscv", elfHeader(elf.ELFCLASS64, elf.EM_RISCV), "ops runs 64-bit x86-64 (amd64) and aarch64 (arm64) programs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, tc.data, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := ReadELF(p)
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v, want %q naming the file", err, tc.err)
			}
			if tc.err == "not an ELF" && !errors.Is(err, errNotELF) {
				t.Fatal("not wrapped as errNotELF")
			}
		})
	}
}

func TestLdSoConfIncludes(t *testing.T) {
	root := t.TempDir()
	testutil.WriteFile(t, filepath.Join(root, "etc/ld.so.conf"), "# comment\ninclude /etc/ld.so.conf.d/*.conf\n/opt/a\n")
	testutil.WriteFile(t, filepath.Join(root, "etc/ld.so.conf.d/x.conf"), "/opt/b:/opt/c\n")
	r := NewResolver(root)
	got := strings.Join(r.dirs, " ")
	if !strings.HasPrefix(got, "/opt/b /opt/c /opt/a /lib/x86_64-linux-gnu") {
		t.Fatalf("search dirs %s", got)
	}
}

func FuzzReadELF(f *testing.F) {
	if b, err := os.ReadFile("/bin/true"); err == nil {
		f.Add(b[:min(len(b), 8192)])
	}
	f.Add(elfHeader(elf.ELFCLASS64, elf.EM_X86_64))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = readELF(bytes.NewReader(b), int64(len(b)), "fuzz")
		if ef, err := elf.NewFile(bytes.NewReader(b)); err == nil && ef.Class == elf.ELFCLASS64 {
			checkDynStrings(t, ef, "fuzz")
		}
	})
}

// TestDynStrings checks dynStrings against debug/elf's DynString on the
// host's programs and libraries.
func TestDynStrings(t *testing.T) {
	var files []string
	for _, pat := range []string{"/usr/bin/*", "/usr/lib/x86_64-linux-gnu/*.so*", "/usr/lib/python3*/lib-dynload/*.so"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	n := 0
	for _, p := range files {
		ef, err := elf.Open(p)
		if err != nil {
			continue
		}
		if ef.Class == elf.ELFCLASS64 {
			checkDynStrings(t, ef, p)
			n++
		}
		ef.Close()
	}
	if n < 10 {
		t.Skipf("SKIP: only %d ELF files found on this host", n)
	}
}

func checkDynStrings(t *testing.T, ef *elf.File, name string) {
	t.Helper()
	needed, rpath, runpath, err := dynStrings(ef)
	for tag, got := range map[elf.DynTag][]string{elf.DT_NEEDED: needed, elf.DT_RPATH: rpath, elf.DT_RUNPATH: runpath} {
		want, werr, panicked := dynString(ef, tag)
		if panicked {
			continue // debug/elf's own panics are readELF's business
		}
		if (err == nil) != (werr == nil) || strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("%s %v: got %q (%v), DynString %q (%v)", name, tag, got, err, want, werr)
		}
	}
}

func dynString(ef *elf.File, tag elf.DynTag) (v []string, err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	v, err = ef.DynString(tag)
	return v, err, false
}

// TestResolveArch: a program is resolved for the image's architecture
// only; another architecture's program is one line naming both.
func TestResolveArch(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		machine elf.Machine
		image   arch.Arch
		err     string
	}{
		{"arm64 for arm64", elf.EM_AARCH64, arch.ARM64, ""},
		{"amd64 for amd64", elf.EM_X86_64, arch.AMD64, ""},
		{"arm64 for amd64", elf.EM_AARCH64, arch.AMD64, "is an arm64 (aarch64) program, but the image is for amd64 (x86_64): build with --arch arm64"},
		{"amd64 for arm64", elf.EM_X86_64, arch.ARM64, "is an amd64 (x86_64) program, but the image is for arm64 (aarch64): build with --arch amd64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.machine.String())
			if err := os.WriteFile(p, elfHeader(elf.ELFCLASS64, tc.machine), 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := NewResolverFor(dir, tc.image).Resolve(p, "/prog")
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}
