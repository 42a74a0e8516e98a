package fs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestNanosDiskSplit: a disk laid out with its own files last, written
// as its shared and own parts, reads as the disk WriteTo writes, the two
// parts never writing one sector; a second disk with other own files
// (other sizes too) but the same shared files has a shared part equal
// byte for byte, and its own part over it reads as that disk whole.
func TestNanosDiskSplit(t *testing.T) {
	dir := t.TempDir()
	own := func(e *Entry) bool { return strings.HasPrefix(e.Path, "/etc/") || strings.HasPrefix(e.Path, "/own/") }
	bootTree := treeOf(t, []Entry{{Path: "/kernel", Kind: KindFile, Source: hostFile(t, dir, "kernel", pattern(70000, 7))}})
	disk := func(hosts string, ownSize int) *NanosDisk {
		tree := uuidTree(t, dir, func(ents map[string]*Entry) {
			ents["/etc/hosts"] = &Entry{Kind: KindFile, Data: []byte(hosts)}
			ents["/own/file"] = &Entry{Kind: KindFile, Source: hostFile(t, dir, fmt.Sprintf("own%d", ownSize), pattern(ownSize, 8))}
		})
		bootFS, err := LayoutTFS(bootTree, nil, TFSOptions{MinSize: BootFSSize})
		if err != nil {
			t.Fatal(err)
		}
		rootFS, err := LayoutTFS(tree, NewTuple().Set("arguments", NewTuple().Set("0", String("prog"))), TFSOptions{Slack: RootSlack, Last: own})
		if err != nil {
			t.Fatal(err)
		}
		mbr := pattern(SectorSize+1024, 9)
		mbr[510], mbr[511] = 0x55, 0xaa
		return &NanosDisk{Boot: &BootLoader{Data: mbr, Stage2: 1024}, BootFS: bootFS, RootFS: rootFS}
	}
	write := func(name string, fn func(*os.File) error) []byte {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := fn(f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var firstShared []byte
	for i, c := range []struct {
		hosts   string
		ownSize int
	}{{"127.0.0.1 one\n", 1000}, {"127.0.0.1 the-second-one\n10.0.0.2 other\n", 3*leafSize + 9}} {
		whole := write(fmt.Sprintf("whole%d", i), disk(c.hosts, c.ownSize).WriteTo)
		d := disk(c.hosts, c.ownSize)
		var digests [][32]byte
		shared := write(fmt.Sprintf("shared%d", i), func(f *os.File) (err error) { digests, err = d.WriteShared(f); return err })
		ownPart := write(fmt.Sprintf("own%d", i), func(f *os.File) error { return d.WriteOwn(f, digests) })
		if len(ownPart) != len(whole) || len(shared) > len(whole) {
			t.Fatalf("disk %d: own part %d bytes, shared %d, whole %d", i, len(ownPart), len(shared), len(whole))
		}
		for s := 0; s < len(shared); s += SectorSize {
			if !bytes.Equal(shared[s:s+SectorSize], make([]byte, SectorSize)) && !bytes.Equal(ownPart[s:s+SectorSize], make([]byte, SectorSize)) {
				t.Fatalf("disk %d: both parts write sector %d", i, s/SectorSize)
			}
		}
		merged := bytes.Clone(ownPart)
		for j, b := range shared {
			merged[j] |= b
		}
		if !bytes.Equal(merged, whole) {
			t.Fatalf("disk %d: its parts over each other are not the whole disk", i)
		}
		if i == 0 {
			firstShared = shared
		} else if !bytes.Equal(shared, firstShared) {
			t.Fatal("two disks with the same shared files have different shared parts")
		}
	}
}

// TestEntriesKey: a key changes with a file's identity (a copy of it is
// another file), not with an empty file made anew; a file changed just
// now is not settled, one changed long before is.
func TestEntriesKey(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	mk := func(name, body string) *Entry {
		p := hostFile(t, dir, name, []byte(body))
		return &Entry{Path: "/" + name, Kind: KindFile, Source: p, Size: int64(len(body))}
	}
	key := func(now time.Time, ents ...*Entry) (string, bool) {
		var b bytes.Buffer
		settled, err := EntriesKey(&b, ents, now)
		if err != nil {
			t.Fatal(err)
		}
		return b.String(), settled
	}
	a, empty := mk("a", "contents"), mk("empty", "")
	later := time.Now().Add(time.Hour)
	k1, settled := key(later, a, empty)
	if !settled {
		t.Fatal("files an hour old are not settled")
	}
	if _, settled := key(time.Now(), a); settled {
		t.Fatal("a file written just now is settled")
	}
	os.Remove(empty.Source)
	empty = mk("empty", "") // a new inode, as each container's /.dockerenv
	if k2, _ := key(later, a, empty); k2 != k1 {
		t.Fatal("an empty file made anew changed the key")
	}
	os.Remove(a.Source)
	a = mk("a", "contents") // the same bytes in another file
	os.Chtimes(a.Source, old, old)
	if k3, _ := key(later, a, empty); k3 == k1 {
		t.Fatal("another file with the same bytes kept the key")
	}
	link := &Entry{Path: "/l", Kind: KindSymlink, Target: "a"}
	if k4, _ := key(later, a, empty, link); k4 == k1 {
		t.Fatal("a link added kept the key")
	}
}
