package fs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostFile writes b to a new file in dir.
func hostFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sparseFile makes a file of size bytes holding data at its start and
// end and a hole between.
func sparseFile(t *testing.T, dir string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	head := bytes.Repeat([]byte("head"), 64<<10/4)
	if _, err := f.WriteAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), size-4); err != nil {
		t.Fatal(err)
	}
	return p
}

// pattern is n bytes that differ from one offset to the next.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// treeOf makes a tree of host files and literal entries.
func treeOf(t *testing.T, entries []Entry) *Tree {
	t.Helper()
	tree := NewTree()
	for _, e := range entries {
		if e.Kind == KindFile && e.Source != "" && e.Size == 0 {
			st, err := os.Stat(e.Source)
			if err != nil {
				t.Fatal(err)
			}
			e.Size = st.Size()
		}
		if err := tree.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

// TestWriteCPIO checks that the file writer gives the bytes the stream
// writer gives, for trees that exercise its pieces.
func TestWriteCPIO(t *testing.T) {
	dir := t.TempDir()
	small := hostFile(t, dir, "small", pattern(1000, 1))
	edge := hostFile(t, dir, "edge", pattern(cpioInlineMax, 2)) // largest inline file
	big := hostFile(t, dir, "big", pattern(cpioInlineMax+3, 3))
	huge := hostFile(t, dir, "huge", pattern(3<<20+1, 4))
	empty := hostFile(t, dir, "empty", nil)
	sparse := sparseFile(t, dir, 8<<20)
	var many []Entry // enough small files for several pieces
	for i := 0; i < 40; i++ {
		many = append(many, Entry{Path: fmt.Sprintf("/many/f%02d", i), Kind: KindFile, Source: edge})
	}
	cases := []struct {
		name    string
		entries []Entry
	}{
		{"empty tree", nil},
		{"literal and links", []Entry{
			{Path: "/init", Kind: KindFile, Data: []byte("#!init"), Mode: 0o755},
			{Path: "/lib/libc.so", Kind: KindSymlink, Target: "libc.so.6"},
			{Path: "/var/empty", Kind: KindDir},
			{Path: "/zero", Kind: KindFile, Data: []byte{}},
		}},
		{"host files", []Entry{
			{Path: "/a/small", Kind: KindFile, Source: small},
			{Path: "/a/edge", Kind: KindFile, Source: edge},
			{Path: "/b/big", Kind: KindFile, Source: big, Mode: 0o755},
			{Path: "/b/huge", Kind: KindFile, Source: huge},
			{Path: "/b/empty", Kind: KindFile, Source: empty},
			{Path: "/c/sparse", Kind: KindFile, Source: sparse},
			{Path: "/c/after", Kind: KindFile, Source: small},
			{Path: "/d/literal", Kind: KindFile, Data: pattern(100<<10, 5)}, // written from its own bytes
		}},
		{"many pieces", many},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ents := treeOf(t, tc.entries).Entries()
			var want bytes.Buffer
			w := newCPIOWriter(&want)
			for _, e := range ents {
				if err := w.Add(e); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(filepath.Join(t.TempDir(), "initramfs"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := WriteCPIO(f, ents); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("WriteCPIO wrote %d bytes that differ from the streaming writer's %d", len(got), want.Len())
			}
		})
	}
}

// TestSourceChangedSize checks that both writers refuse a source whose
// size is not the planned one, small or large, grown or shrunk.
func TestSourceChangedSize(t *testing.T) {
	dir := t.TempDir()
	small := hostFile(t, dir, "small", pattern(100, 1))
	big := hostFile(t, dir, "big", pattern(1<<20, 2))
	cases := []struct {
		name string
		src  string
		size int64
	}{
		{"small grew", small, 99},
		{"small shrank", small, 101},
		{"big grew", big, 1<<20 - 1},
		{"big shrank", big, 1<<20 + 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tree := treeOf(t, []Entry{{Path: "/f", Kind: KindFile, Source: tc.src, Size: tc.size}})
			f, err := os.Create(filepath.Join(t.TempDir(), "img"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			err = WriteCPIO(f, tree.Entries())
			if err == nil || !strings.Contains(err.Error(), "changed size") {
				t.Errorf("cpio: got %v, want a changed-size error", err)
			}
			l, err := LayoutTFS(tree, nil, TFSOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(int64(l.SizeSecs) * SectorSize); err != nil {
				t.Fatal(err)
			}
			err = l.WriteAt(f, 0)
			if err == nil || !strings.Contains(err.Error(), "changed size") {
				t.Errorf("tfs: got %v, want a changed-size error", err)
			}
		})
	}
}

// TestTFSPlacesSources checks host files' and in-memory contents in a TFS
// image: small files gathered in batches (across several buffers, some
// next to in-memory ones), large ones in chunks, and that a source's hole
// stays a hole in the image.
func TestTFSPlacesSources(t *testing.T) {
	dir := t.TempDir()
	srcs := map[string]string{
		"/small":        hostFile(t, dir, "small", pattern(777, 1)),
		"/big":          hostFile(t, dir, "big", pattern(5<<20+11, 2)),
		"/empty":        hostFile(t, dir, "empty", nil),
		"/sparse":       sparseFile(t, dir, 16<<20),
		"/at-batch-max": hostFile(t, dir, "at-batch-max", pattern(batchMax, 3)),
		"/below-max":    hostFile(t, dir, "below-max", pattern(batchMax-1, 4)),
		"/one-sector":   hostFile(t, dir, "one-sector", pattern(SectorSize, 5)),
	}
	for i := 0; i < 40; i++ {
		srcs[fmt.Sprintf("/many/%02d", i)] = hostFile(t, dir, fmt.Sprint("many", i), pattern(i*1501+1, byte(i)))
	}
	data := map[string][]byte{
		"/etc/small-data": pattern(300, 6),
		"/etc/large-data": pattern(batchMax+700, 7),
		"/many/10x":       pattern(1000, 8),
	}
	var entries []Entry
	for g, h := range srcs {
		entries = append(entries, Entry{Path: g, Kind: KindFile, Source: h})
	}
	for g, d := range data {
		entries = append(entries, Entry{Path: g, Kind: KindFile, Data: d})
	}
	tree := treeOf(t, entries)
	l, err := LayoutTFS(tree, nil, TFSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := int64(l.SizeSecs) * SectorSize
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteAt(f, 0); err != nil {
		t.Fatal(err)
	}
	rd, err := OpenTFS(f, size)
	if err != nil {
		t.Fatal(err)
	}
	for g, h := range srcs {
		want, _ := os.ReadFile(h)
		data[g] = want
	}
	for g, want := range data {
		n, err := rd.Lookup(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rd.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: contents differ", g)
		}
		// The rest of its last sector reads as zeros: a reused buffer's
		// old bytes are not written there.
		if pad := roundSector(int64(len(want))) - int64(len(want)); pad > 0 {
			off, _ := n.Tuple("extents").Tuple("0").uint("offset")
			tail := make([]byte, pad)
			if _, err := f.ReadAt(tail, int64(off)*SectorSize+int64(len(want))); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tail, make([]byte, pad)) {
				t.Errorf("%s: the end of its last sector is not zeros", g)
			}
		}
	}
	n, _ := rd.Lookup("/sparse")
	start, _ := n.Tuple("extents").Tuple("0").uint("offset")
	mid := int64(start)*SectorSize + 8<<20
	if data, err := unix.Seek(int(f.Fd()), mid, unix.SEEK_DATA); err == nil && data == mid {
		t.Errorf("the hole in /sparse was written into the image")
	}
}

// TestTFSWriteReproducible checks that placing files side by side gives
// the same bytes every time, the UUID included.
func TestTFSWriteReproducible(t *testing.T) {
	dir := t.TempDir()
	var entries []Entry
	for i := 0; i < 50; i++ {
		entries = append(entries, Entry{Path: fmt.Sprintf("/d/f%02d", i), Kind: KindFile,
			Source: hostFile(t, dir, fmt.Sprint(i), pattern(i*4099, byte(i)))})
	}
	tree := treeOf(t, entries)
	var first []byte
	for i := 0; i < 3; i++ {
		_, b := writeTFS(t, tree, nil)
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("write %d differs from the first", i)
		}
	}
}
