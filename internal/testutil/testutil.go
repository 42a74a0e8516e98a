// Package testutil holds what the tests of several packages need: files
// written in one call, gcc, and a fake Nanos release.
package testutil

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// WriteFile writes content to p, making its folder first.
func WriteFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// NeedGCC skips the test when gcc is not installed.
func NeedGCC(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("SKIP: gcc not installed ('make test-deps')")
	}
}

// GCC runs gcc with args in dir.
func GCC(t *testing.T, dir string, args ...string) {
	t.Helper()
	c := exec.Command("gcc", args...)
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, out)
	}
}

// FakeReleaseARM64 writes an arm64 release to dir as the virt platform's
// archive has it: an aarch64 ELF as the kernel (/bin/true with its machine
// changed), a UEFI loader, a klib named strace, and no boot.img.
func FakeReleaseARM64(t testing.TB, dir string) Release {
	t.Helper()
	r := Release{Kernel: filepath.Join(dir, "kernel.img"), KlibDir: filepath.Join(dir, "klibs")}
	kern, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(kern[18:], 183) // EM_AARCH64
	if err := os.WriteFile(r.Kernel, kern, 0o644); err != nil {
		t.Fatal(err)
	}
	WriteFile(t, filepath.Join(dir, "bootaa64.efi"), "MZ loader")
	WriteFile(t, filepath.Join(r.KlibDir, "strace"), "klib")
	return r
}

// Release is a release's files.
type Release struct{ Kernel, Boot, KlibDir string }

// FakeRelease writes a release to dir: a boot.img with a valid region
// record, a real x86-64 ELF as the kernel (enough to lay out and read
// back images), and a klib named strace.
func FakeRelease(t testing.TB, dir string) Release {
	t.Helper()
	const s2 = 2 * 512
	boot := make([]byte, 512+s2)
	binary.LittleEndian.PutUint64(boot[0x1aa:], 0x8000)
	binary.LittleEndian.PutUint64(boot[0x1aa+8:], s2)
	binary.LittleEndian.PutUint32(boot[0x1aa+16:], 12)
	boot[510], boot[511] = 0x55, 0xaa
	copy(boot[512:], "stage2")
	r := Release{Boot: filepath.Join(dir, "boot.img"), Kernel: filepath.Join(dir, "kernel.img"), KlibDir: filepath.Join(dir, "klibs")}
	if err := os.WriteFile(r.Boot, boot, 0o644); err != nil {
		t.Fatal(err)
	}
	kern, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.Kernel, kern, 0o644); err != nil {
		t.Fatal(err)
	}
	WriteFile(t, filepath.Join(r.KlibDir, "strace"), "klib")
	return r
}
