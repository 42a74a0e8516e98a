package fs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"testing"
)

// uuidTree is a tree with contents on every path the writer takes: small
// host and in-memory files (gathered in batches), large ones of several
// leaves (the last one short), a file of exactly one leaf, a sparse one,
// links and an empty folder. change, when set, edits the entries before
// they are added.
func uuidTree(t *testing.T, dir string, change func(map[string]*Entry)) *Tree {
	t.Helper()
	big := pattern(3*leafSize+11, 2)
	for i := 0; i < len(big); i += leafSize {
		big[i+1] = byte(i / leafSize) // no two leaves alike
	}
	ents := map[string]*Entry{
		"/small":      {Kind: KindFile, Source: hostFile(t, dir, "small", pattern(777, 1))},
		"/big":        {Kind: KindFile, Source: hostFile(t, dir, "big", big)},
		"/leaf":       {Kind: KindFile, Source: hostFile(t, dir, "leaf", pattern(leafSize, 3))},
		"/sparse":     {Kind: KindFile, Source: sparseFile(t, dir, 2<<20)},
		"/etc/data":   {Kind: KindFile, Data: pattern(300, 4)},
		"/etc/large":  {Kind: KindFile, Data: pattern(2*leafSize+5, 5)},
		"/lib/link":   {Kind: KindSymlink, Target: "../small"},
		"/var/empty":  {Kind: KindDir},
		"/zero":       {Kind: KindFile, Data: []byte{}},
		"/many/after": {Kind: KindFile, Source: hostFile(t, dir, "after", pattern(5000, 6))},
	}
	for i := 0; i < 30; i++ {
		ents[fmt.Sprintf("/many/%02d", i)] = &Entry{Kind: KindFile, Data: pattern(i*1501+1, byte(i))}
	}
	if change != nil {
		change(ents)
	}
	var list []Entry
	for p, e := range ents {
		e.Path = p
		list = append(list, *e)
	}
	return treeOf(t, list)
}

// refUUID derives the UUID from the image's own bytes, one leaf after
// another, as UUIDScheme describes it: what the workers hashed, in
// whatever order, must give the same.
func refUUID(l *TFS, img []byte) [16]byte {
	var b []byte
	num := func(v uint64) { b = binary.BigEndian.AppendUint64(b, v) }
	b = append(b, "tfs-uuid-2\n"...)
	num(128 << 10)
	num(uint64(len(l.label)))
	b = append(b, l.label...)
	num(uint64(len(l.log)))
	for i, ext := range l.log {
		at := (1 + i*ExtensionSecs) * SectorSize
		num(uint64(len(ext)))
		b = append(b, img[at:at+len(ext)]...)
	}
	num(uint64(len(l.files)))
	for _, p := range l.files {
		num(p.offset)
		num(uint64(p.e.Size))
		data := img[p.offset*SectorSize:][:p.e.Size]
		for len(data) > 0 {
			leaf := sha256.Sum256(data[:min(len(data), 128<<10)])
			b = append(b, leaf[:]...)
			data = data[min(len(data), 128<<10):]
		}
	}
	var u [16]byte
	sum := sha256.Sum256(b)
	copy(u[:], sum[:])
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}

// TestTFSUUIDAcrossProcs writes the same tree with 1, 2 and 8 workers,
// three times each: every image is the same, byte for byte, and its UUID
// is the one its bytes give.
func TestTFSUUIDAcrossProcs(t *testing.T) {
	tree := uuidTree(t, t.TempDir(), nil)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var first []byte
	for _, procs := range []int{1, 2, 8} {
		runtime.GOMAXPROCS(procs)
		for run := 0; run < 3; run++ {
			l, img := writeTFS(t, tree, NewTuple().Set("program", String("/big")))
			if ref := refUUID(l, img); l.uuid != ref {
				t.Fatalf("GOMAXPROCS=%d run %d: UUID %x, its bytes give %x", procs, run, l.uuid, ref)
			}
			if first == nil {
				first = img
			} else if !bytes.Equal(img, first) {
				t.Fatalf("GOMAXPROCS=%d run %d: the image differs from the first", procs, run)
			}
		}
	}
}

// TestTFSUUIDGolden pins the UUID of a small tree: the same inputs give
// the same UUID on any machine, under this scheme (UUIDScheme), forever.
func TestTFSUUIDGolden(t *testing.T) {
	tree := NewTree()
	for _, e := range []Entry{
		{Path: "/hello", Kind: KindFile, Data: []byte("hello\n")},
		{Path: "/big", Kind: KindFile, Data: pattern(leafSize+1, 9)},
		{Path: "/lib/link", Kind: KindSymlink, Target: "../hello"},
	} {
		if err := tree.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	l, _ := writeTFSWith(t, tree, NewTuple().Set("program", String("/hello")), TFSOptions{Label: "golden", Slack: RootSlack})
	const want = "eec2e4ed601158139005c282d5cc4620"
	if got := hex.EncodeToString(l.uuid[:]); got != want {
		t.Fatalf("UUID %s, want %s", got, want)
	}
}

// TestTFSUUIDChanges changes one thing at a time: each change gives
// another UUID, and only a change the filesystem does not hold (a mode)
// leaves the image as it was.
func TestTFSUUIDChanges(t *testing.T) {
	dir := t.TempDir()
	setByte := func(p string, at func(n int) int) func(map[string]*Entry) {
		return func(ents map[string]*Entry) {
			e := ents[p]
			var b []byte
			if e.Data != nil {
				b = bytes.Clone(e.Data)
			} else {
				b, _ = os.ReadFile(e.Source)
			}
			b[at(len(b))] ^= 0x40
			if e.Data != nil {
				e.Data = b
			} else {
				e.Source = hostFile(t, t.TempDir(), "changed", b)
			}
		}
	}
	first := func(int) int { return 0 }
	middle := func(n int) int { return n / 2 }
	last := func(n int) int { return n - 1 }
	cases := []struct {
		name   string
		change func(map[string]*Entry)
		same   bool // the image does not change at all
	}{
		{"small file, first byte", setByte("/small", first), false},
		{"small file, middle byte", setByte("/small", middle), false},
		{"small file, last byte", setByte("/small", last), false},
		{"in-memory small file, last byte", setByte("/etc/data", last), false},
		{"file in a batch, first byte", setByte("/many/17", first), false},
		{"large file, first byte", setByte("/big", first), false},
		{"large file, middle byte", setByte("/big", middle), false},
		{"large file, last byte (its short leaf)", setByte("/big", last), false},
		{"large file, last byte of a leaf", setByte("/big", func(int) int { return 2*leafSize - 1 }), false},
		{"large file, first byte of a leaf", setByte("/big", func(int) int { return 2 * leafSize }), false},
		{"file of one leaf, last byte", setByte("/leaf", last), false},
		{"in-memory large file, middle byte", setByte("/etc/large", middle), false},
		{"sparse file, its tail", setByte("/sparse", last), false},
		{"sparse file, in its hole", setByte("/sparse", middle), false},
		{"large file, two leaves swapped", func(ents map[string]*Entry) {
			b, _ := os.ReadFile(ents["/big"].Source)
			l0, l1 := bytes.Clone(b[:leafSize]), bytes.Clone(b[leafSize:2*leafSize])
			copy(b, l1)
			copy(b[leafSize:], l0)
			ents["/big"].Source = hostFile(t, t.TempDir(), "swapped", b)
		}, false},
		{"a byte moved across a leaf boundary", func(ents map[string]*Entry) {
			b, _ := os.ReadFile(ents["/big"].Source)
			// The leaf's last byte becomes the next leaf's first, the
			// bytes between them shifted: every byte is still there.
			moved := b[leafSize-1]
			copy(b[leafSize-1:leafSize], b[leafSize:leafSize+1])
			b[leafSize] = moved
			ents["/big"].Source = hostFile(t, t.TempDir(), "moved", b)
		}, false},
		{"a byte moved from one file to the next", func(ents map[string]*Entry) {
			a, b := ents["/many/03"].Data, ents["/many/04"].Data
			ents["/many/03"].Data = a[:len(a)-1]
			ents["/many/04"].Data = append([]byte{a[len(a)-1]}, b...)
		}, false},
		{"a file name", func(ents map[string]*Entry) {
			ents["/smell"] = ents["/small"]
			delete(ents, "/small")
		}, false},
		{"a link target", func(ents map[string]*Entry) { ents["/lib/link"].Target = "../smell" }, false},
		{"an empty file added", func(ents map[string]*Entry) { ents["/zero2"] = &Entry{Kind: KindFile, Data: []byte{}} }, false},
		{"an empty folder added", func(ents map[string]*Entry) { ents["/var/empty2"] = &Entry{Kind: KindDir} }, false},
		// TFS keeps no modes: there is no byte to change.
		{"a mode", func(ents map[string]*Entry) { ents["/small"].Mode = 0o755 }, true},
	}
	_, base := writeTFS(t, uuidTree(t, dir, nil), nil)
	baseUUID := base[8:24]
	seen := map[string]string{string(baseUUID): "the unchanged tree"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, img := writeTFS(t, uuidTree(t, t.TempDir(), tc.change), nil)
			if ref := refUUID(l, img); l.uuid != ref {
				t.Fatalf("UUID %x, its bytes give %x", l.uuid, ref)
			}
			if tc.same {
				if !bytes.Equal(img, base) {
					t.Fatal("the image changed")
				}
				return
			}
			if bytes.Equal(img, base) {
				t.Fatal("the change did not reach the image")
			}
			if other, ok := seen[string(l.uuid[:])]; ok {
				t.Fatalf("the same UUID as %s", other)
			}
			seen[string(l.uuid[:])] = tc.name
		})
	}
	// And the label, which only the header holds beside the UUID.
	l, _ := writeTFSWith(t, uuidTree(t, dir, nil), nil, TFSOptions{Label: "other", Slack: RootSlack})
	if bytes.Equal(l.uuid[:], baseUUID) {
		t.Fatal("another label gives the same UUID")
	}
}
