package fs

import (
	"bytes"
	"testing"
)

func TestCPIORoundTrip(t *testing.T) {
	tree := NewTree()
	for _, e := range []Entry{
		{Path: "/init", Kind: KindFile, Data: []byte("#!init"), Mode: 0o755},
		{Path: "/etc/hosts", Kind: KindFile, Data: []byte("127.0.0.1 localhost\n")},
		{Path: "/lib/libc.so", Kind: KindSymlink, Target: "libc.so.6"},
		{Path: "/empty", Kind: KindFile, Data: []byte{}},
	} {
		if err := tree.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	write := func() []byte {
		var buf bytes.Buffer
		w := newCPIOWriter(&buf)
		for _, e := range tree.Entries() {
			if err := w.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a, b := write(), write()
	if !bytes.Equal(a, b) {
		t.Fatal("cpio output is not reproducible")
	}
	if len(a)%4 != 0 {
		t.Fatalf("archive length %d not padded", len(a))
	}
	ents, err := readCPIO(a)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]cpioEntry{}
	for _, e := range ents {
		got[e.Name] = e
	}
	if e := got["init"]; string(e.Data) != "#!init" || e.Mode != 0o100755 {
		t.Fatalf("init: %+v", e)
	}
	if e := got["lib/libc.so"]; string(e.Data) != "libc.so.6" || e.Mode&0o170000 != 0o120000 {
		t.Fatalf("symlink: %+v", e)
	}
	if e, ok := got["etc"]; !ok || e.Mode&0o170000 != 0o040000 {
		t.Fatalf("parent dir: %+v", e)
	}
	if _, ok := got["."]; !ok {
		t.Fatal("root entry missing")
	}
}
