package fs

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func writeTFS(t testing.TB, tree *Tree, root *Tuple) (*TFS, []byte) {
	t.Helper()
	return writeTFSWith(t, tree, root, TFSOptions{Slack: RootSlack})
}

// writeTFSWith lays out and writes a filesystem with opt, returning its
// bytes.
func writeTFSWith(t testing.TB, tree *Tree, root *Tuple, opt TFSOptions) (*TFS, []byte) {
	t.Helper()
	l, err := LayoutTFS(tree, root, opt)
	if err != nil {
		t.Fatal(err)
	}
	return l, writeLaidOut(t, l)
}

// writeLaidOut writes a laid-out filesystem into a new file and returns
// its bytes.
func writeLaidOut(t testing.TB, l *TFS) []byte {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "fs"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(l.SizeSecs) * SectorSize); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteAt(f, 0); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTFSRoundTrip(t *testing.T) {
	host := filepath.Join(t.TempDir(), "host")
	if err := os.WriteFile(host, []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), (40<<20)/16+7) // > 32 MiB: two extents
	cases := []struct {
		path string
		e    Entry
	}{
		{"/hello", Entry{Kind: KindFile, Data: []byte("hi\n")}},
		{"/empty", Entry{Kind: KindFile, Data: []byte{}}},
		{"/etc/host.txt", Entry{Kind: KindFile, Source: host, Size: 13}},
		{"/big", Entry{Kind: KindFile, Data: big}},
		{"/lib/link", Entry{Kind: KindSymlink, Target: "../hello"}},
		{"/var/empty", Entry{Kind: KindDir}},
	}
	tree := NewTree()
	for _, c := range cases {
		c.e.Path = c.path
		if err := tree.Add(c.e); err != nil {
			t.Fatal(err)
		}
	}
	manifest := NewTuple().Set("program", String("/hello")).Set("arguments", Vector{String("hello")})
	l, img := writeTFS(t, tree, manifest)
	if l.SizeSecs*SectorSize%RootSlack != 0 || int64(l.SizeSecs)*SectorSize < l.UsedBytes()+RootSlack {
		t.Fatalf("size %d sectors does not keep 512 KiB slack after %d bytes", l.SizeSecs, l.UsedBytes())
	}
	rd, err := OpenTFS(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if rd.UUID != l.uuid {
		t.Fatalf("uuid %x, want %x", rd.UUID, l.uuid)
	}
	for _, c := range cases {
		n, err := rd.Lookup(c.path)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		switch c.e.Kind {
		case KindFile:
			got, err := rd.ReadFile(n)
			if err != nil {
				t.Fatalf("%s: %v", c.path, err)
			}
			want := c.e.Data
			if want == nil {
				want, _ = os.ReadFile(c.e.Source)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: contents differ (%d bytes, want %d)", c.path, len(got), len(want))
			}
		case KindSymlink:
			if v, _ := n.Get("linktarget"); v != String(c.e.Target) {
				t.Fatalf("%s: linktarget %v", c.path, v)
			}
		case KindDir:
			if n.Tuple("children") == nil {
				t.Fatalf("%s: not a directory", c.path)
			}
		}
	}
	if got := Format(rd.Root.Tuple("children").Tuple("big").Tuple("extents")); got !=
		fmt.Sprintf("(0:(allocated:65536 length:65536 offset:1025) 65536:(allocated:16385 length:16385 offset:%d))", 1025+65536) {
		t.Fatalf("big file extents %s", got)
	}
	if v, _ := rd.Root.Get("program"); v != String("/hello") {
		t.Fatalf("program = %v", v)
	}
}

func TestTFSReproducible(t *testing.T) {
	build := func(order []string) []byte {
		tree := NewTree()
		for _, p := range order {
			if err := tree.Add(Entry{Path: p, Kind: KindFile, Data: []byte(p)}); err != nil {
				t.Fatal(err)
			}
		}
		_, b := writeTFS(t, tree, NewTuple().Set("program", String("/a")))
		return b
	}
	a := build([]string{"/a", "/b/c", "/b/d"})
	b := build([]string{"/b/d", "/b/c", "/a"})
	if sha256.Sum256(a) != sha256.Sum256(b) {
		t.Fatal("same tree added in another order gives different bytes")
	}
	c := build([]string{"/a", "/b/c", "/b/e"})
	if bytes.Equal(a[6+1+1:6+1+1+16], c[6+1+1:6+1+1+16]) {
		t.Fatal("different contents give the same UUID")
	}
}

func TestTFSManyFilesSpanExtensions(t *testing.T) {
	tree := NewTree()
	for i := 0; i < 12000; i++ {
		if err := tree.Add(Entry{Path: fmt.Sprintf("/d%03d/file-with-a-longish-name-%05d", i%100, i), Kind: KindFile, Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	l, img := writeTFS(t, tree, nil)
	if l.logSecs < 2*ExtensionSecs {
		t.Fatalf("metadata for 12000 files fit in %d sectors; test does not span extensions", l.logSecs)
	}
	rd, err := OpenTFS(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := rd.Lookup("/d042/file-with-a-longish-name-11942")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := rd.ReadFile(n); err != nil || len(b) != 1 || b[0] != byte(11942%256) {
		t.Fatalf("read %v %v", b, err)
	}
}

func TestTreeConflicts(t *testing.T) {
	tree := NewTree()
	if err := tree.Add(Entry{Path: "/a", Kind: KindFile, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := tree.Add(Entry{Path: "/a/b", Kind: KindFile}); err == nil {
		t.Fatal("a file below a file was accepted")
	}
	if err := tree.Add(Entry{Path: "../../etc//x", Kind: KindFile}); err != nil {
		t.Fatal(err)
	}
	if _, ok := tree.Get("/etc/x"); !ok {
		t.Fatal("relative path not cleaned into the root")
	}
}

func FuzzOpenTFS(f *testing.F) {
	tree := NewTree()
	_ = tree.Add(Entry{Path: "/x", Kind: KindFile, Data: []byte("x")})
	l, _ := LayoutTFS(tree, nil, TFSOptions{})
	img := append(l.header(), l.log[0]...)
	f.Add(img)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < SectorSize {
			return
		}
		// Treat the input as sectors 0 and 1, and pad to the log length.
		full := make([]byte, (1+ExtensionSecs)*SectorSize+4096)
		copy(full, b)
		rd, err := OpenTFS(bytes.NewReader(full), int64(len(full)))
		if err != nil {
			return
		}
		if n, err := rd.Lookup("/x"); err == nil {
			_, _ = rd.ReadFile(n)
		}
		_ = Format(rd.Root) // what 'ops image tree' prints
	})
}
