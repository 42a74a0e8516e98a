package fs

import (
	"bytes"
	"testing"
)

// TestBootStub: the stub is Nanos's virt mbr.hex: zeros but for the
// filesystem region record (base 0x8000, no stage2) and the signature.
func TestBootStub(t *testing.T) {
	b := BootStub()
	want := make([]byte, 512)
	copy(want[0x1aa:], []byte{0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0})
	want[510], want[511] = 0x55, 0xaa
	if !bytes.Equal(b.Data, want) || b.Stage2 != 0 || b.KlogOffset() != 512 {
		t.Fatalf("stub %x, stage2 %d", b.Data[0x1a0:], b.Stage2)
	}
	if n, ok := Stage2Len(b.Data); !ok || n != 0 {
		t.Fatalf("Stage2Len of the stub: %d %v", n, ok)
	}
	if _, ok := Stage2Len(make([]byte, 512)); ok {
		t.Fatal("a sector without a region record has a stage2 length")
	}
	if p, err := ParseBootImg(b.Data); err != nil || p.Stage2 != 0 {
		t.Fatalf("the stub does not parse as a boot.img: %v", err)
	}
}

func TestParseKlog(t *testing.T) {
	rec := append([]byte("KLOG"), make([]byte, 4092)...)
	rec[12] = 3
	neg := bytes.Clone(rec)
	copy(neg[12:], []byte{0xff, 0xff, 0xff, 0xff})
	for _, tc := range []struct {
		name string
		b    []byte
		code int
		ok   bool
	}{
		{"exit 3", rec, 3, true},
		{"exit -1", neg, -1, true},
		{"zeros", make([]byte, 4096), 0, false},
		{"short", []byte("KLOG"), 0, false},
	} {
		if code, ok := ParseKlog(tc.b); code != tc.code || ok != tc.ok {
			t.Errorf("%s: %d %v", tc.name, code, ok)
		}
	}
}
