package imgfmt

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opsdev/ops/qemu"
)

// TestOverlay: an overlay of own over base reads, through ops's qcow2
// reader and through qemu-img's (when installed), as own's and base's
// bytes over each other: chunks of own alone, of both (own's sector in
// a chunk of base's), of base alone, base ending before own does, and
// own's empty tail.
func TestOverlay(t *testing.T) {
	dir := t.TempDir()
	const size = 40 * chunkSize
	ownB, baseB := make([]byte, size), make([]byte, 30*chunkSize+1000)
	fill := func(b []byte, off, n int, seed byte) {
		for i := range n {
			b[off+i] = byte(i)*7 + seed | 1
		}
	}
	fill(ownB, 0, 512, 1)                    // chunk 0: own's sector beside base's
	fill(baseB, 512, 3000, 2)                //
	fill(ownB, 5*chunkSize+4096, 10000, 3)   // chunk 5: own alone
	fill(baseB, 9*chunkSize, 2*chunkSize, 4) // chunks 9-10: base alone
	fill(ownB, 30*chunkSize+1024, 5000, 5)   // chunk 30: past base's end but for its first 1000 bytes
	fill(baseB, 30*chunkSize, 1000, 6)
	write := func(name string, b []byte) *os.File {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	own, base := write("own", ownB), write("base", baseB)
	ovPath := filepath.Join(dir, "overlay.qcow2")
	dst, err := os.Create(ovPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := Overlay(dst, own, base); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	want := bytes.Clone(ownB)
	for i, v := range baseB {
		want[i] |= v
	}
	ov, err := os.Open(ovPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ov.Close()
	if n, err := qemu.OverlaySize(ov); err != nil || n != size {
		t.Fatalf("overlay size %d, %v; want %d", n, err, size)
	}
	got := make([]byte, size)
	if _, err := (qemu.OverlayDisk{Overlay: ov, Base: base}).ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the overlay does not read as own over base")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed: the overlay was read by ops's reader only")
	}
	spec := `json:{"driver":"qcow2","file":{"driver":"file","filename":"` + ovPath + `"},"backing":{"driver":"raw","file":{"driver":"file","filename":"` + base.Name() + `"}}}`
	whole := filepath.Join(dir, "whole")
	if err := os.WriteFile(whole, want, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "compare", "-U", spec, whole).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare: %v: %s", err, out)
	}
	if out, err := exec.Command("qemu-img", "check", "-f", "qcow2", ovPath).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check: %v: %s", err, out)
	}
}
