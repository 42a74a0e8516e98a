package qemu

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestOverlay: a fresh overlay reads as its base; once QEMU's own qcow2
// driver (qemu-io) wrote through it, ReadOverlay reads the writes where
// they were made and the base elsewhere, and qemu-img finds the file
// consistent.
func TestOverlay(t *testing.T) {
	dir := t.TempDir()
	base := bytes.Repeat([]byte("base"), 3<<20/4) // 3 MiB: writes span L2 entries
	basePath, ovPath := filepath.Join(dir, "base.img"), filepath.Join(dir, "ov.qcow2")
	if err := os.WriteFile(basePath, base, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CreateOverlay(ovPath, int64(len(base))); err != nil {
		t.Fatal(err)
	}
	read := func(off, n int64) []byte {
		t.Helper()
		ov, err := os.Open(ovPath)
		if err != nil {
			t.Fatal(err)
		}
		defer ov.Close()
		b, _ := os.Open(basePath)
		defer b.Close()
		buf := make([]byte, n)
		if err := ReadOverlay(ov, b, off, buf); err != nil {
			t.Fatal(err)
		}
		return buf
	}
	if got := read(100, 200000); !bytes.Equal(got, base[100:200100]) {
		t.Fatal("a fresh overlay does not read as its base")
	}
	io, err := exec.LookPath("qemu-io")
	if err != nil {
		t.Skip("qemu-io is not installed (make test-deps installs qemu-utils): QEMU's writes through the overlay are not checked")
	}
	opts := "driver=qcow2,file.driver=file,file.filename=" + ovPath + ",backing.driver=raw,backing.file.driver=file,backing.file.filename=" + basePath
	if out, err := exec.Command(io, "--image-opts", opts, "-c", "write -P 0xab 512 4096", "-c", "write -P 0xcd 2097000 70000").CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	want := bytes.Clone(base)
	copy(want[512:], bytes.Repeat([]byte{0xab}, 4096))
	copy(want[2097000:], bytes.Repeat([]byte{0xcd}, 70000))
	for _, r := range [][2]int64{{0, 8192}, {500, 20}, {2090000, 100000}, {0, int64(len(base))}} {
		if got := read(r[0], r[1]); !bytes.Equal(got, want[r[0]:r[0]+r[1]]) {
			t.Fatalf("bytes %d+%d differ from what was written", r[0], r[1])
		}
	}
	if b, _ := os.ReadFile(basePath); !bytes.Equal(b, base) {
		t.Fatal("the base was written")
	}
	if img, err := exec.LookPath("qemu-img"); err == nil {
		if out, err := exec.Command(img, "check", "-f", "qcow2", ovPath).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img check: %v\n%s", err, out)
		}
	}
}

func FuzzReadOverlay(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "ov")
	if err := CreateOverlay(p, 1<<30); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(p)
	f.Add(seed[:1024], int64(512))
	f.Fuzz(func(t *testing.T, head []byte, off int64) {
		if off < 0 || off > 1<<40 {
			return
		}
		ov := bytes.NewReader(head)
		base := bytes.NewReader(make([]byte, 1<<16))
		_ = ReadOverlay(ov, base, off, make([]byte, 4096))
	})
}
