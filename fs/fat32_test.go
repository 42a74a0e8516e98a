package fs

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestShortName(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"EFI", "EFI        ", ""},
		{"bootx64.efi", "BOOTX64 EFI", ""},
		{"a.b", "A       B  ", ""},
		{"toolongname", "", "not an 8.3 name"},
		{"x.html", "", "not an 8.3 name"},
		{"a.b.c", "", "not an 8.3 name"},
		{".hidden", "", "not an 8.3 name"},
		{"", "", "not an 8.3 name"},
		{"sp ace", "", "cannot be in an 8.3 name"},
		{"a+b", "", "cannot be in an 8.3 name"},
	} {
		got, err := shortName(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("shortName(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func FuzzShortName(f *testing.F) {
	for _, s := range []string{"EFI", "bootx64.efi", "a.b.c", "ü.x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := shortName(s)
		if err == nil && (len(n) != 11 || strings.ToUpper(n) != n) {
			t.Fatalf("shortName(%q) = %q: not 11 upper-case bytes", s, n)
		}
	})
}

func TestNewFAT32Errors(t *testing.T) {
	for _, tc := range []struct {
		sectors uint32
		files   []FATFile
		err     string
	}{
		{1000, nil, "at least 65525 clusters"},
		{espSectors, []FATFile{{"/A/B", []byte{1}}, {"/A/B", []byte{2}}}, "given twice"},
		{espSectors, []FATFile{{"/A", []byte{1}}, {"/A/B", []byte{2}}}, "A is a file"},
		{espSectors, []FATFile{{"/EFI/LONGFILENAME.EFI", []byte{1}}}, "not an 8.3 name"},
		{espSectors, []FATFile{{"/BIG", make([]byte, ESPSize)}}, "clusters"},
	} {
		if _, err := newFAT32(tc.sectors, 1, tc.files); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("newFAT32(%d, %v): %v, want an error with %q", tc.sectors, len(tc.files), err, tc.err)
		}
	}
}

func writeESP(t *testing.T, loader []byte) (string, *FAT32) {
	t.Helper()
	esp, err := NewESP(loader, ESPLoader)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "esp.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(ESPSize); err != nil {
		t.Fatal(err)
	}
	if err := esp.WriteAt(f, 0); err != nil {
		t.Fatal(err)
	}
	return p, esp
}

// TestESPLayout checks the layout against what Nanos's mkfs -u writes
// (format notes §1.7): the root folder at cluster 2, \EFI at 3, \EFI\BOOT
// at 4 and the loader from cluster 5 in one linear chain.
func TestESPLayout(t *testing.T) {
	loader := bytes.Repeat([]byte("bootx64!"), 20000) // 160,000 bytes, 313 clusters
	p, esp := writeESP(t, loader)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if string(b[82:90]) != "FAT32   " || le.Uint32(b[44:]) != 2 || le.Uint16(b[11:]) != 512 || b[13] != 1 {
		t.Fatalf("boot sector does not describe FAT32 with 512-byte clusters and the root at cluster 2")
	}
	if !bytes.Equal(b[:512], b[6*512:7*512]) {
		t.Errorf("the backup boot sector differs from the boot sector")
	}
	dataStart := int64(fatReserved+fatCount*esp.fatSecs) * SectorSize
	cluster := func(c int64) []byte { return b[dataStart+(c-2)*SectorSize:][:SectorSize] }
	entry := func(dir []byte, name string) (uint32, uint32) {
		for i := 0; i < len(dir); i += 32 {
			if string(dir[i:i+11]) == name {
				return uint32(le.Uint16(dir[i+20:]))<<16 | uint32(le.Uint16(dir[i+26:])), le.Uint32(dir[i+28:])
			}
		}
		t.Fatalf("no %q entry", name)
		return 0, 0
	}
	if c, _ := entry(cluster(2), "EFI        "); c != 3 {
		t.Errorf(`\EFI at cluster %d, want 3`, c)
	}
	if c, _ := entry(cluster(3), "BOOT       "); c != 4 {
		t.Errorf(`\EFI\BOOT at cluster %d, want 4`, c)
	}
	c, size := entry(cluster(4), "BOOTX64 EFI")
	if c != 5 || size != uint32(len(loader)) {
		t.Errorf("BOOTX64.EFI at cluster %d, %d bytes; want 5, %d", c, size, len(loader))
	}
	fat := b[fatReserved*SectorSize:]
	n := (len(loader) + 511) / 512
	for i := 5; i < 5+n; i++ {
		want := uint32(i + 1)
		if i == 5+n-1 {
			want = fatEOC
		}
		if got := le.Uint32(fat[i*4:]); got != want {
			t.Fatalf("FAT entry %d = %#x, want %#x", i, got, want)
		}
	}
	if !bytes.Equal(b[dataStart+3*SectorSize:][:len(loader)], loader) {
		t.Errorf("the loader's bytes are not at cluster 5")
	}
	p2, _ := writeESP(t, loader)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b, b2) {
		t.Errorf("two ESPs from one loader differ")
	}
}

// TestESPToolsRead has dosfstools and mtools read the ESP: fsck finds
// nothing to fix, and mtype reads the loader back byte for byte.
func TestESPToolsRead(t *testing.T) {
	for _, tool := range []string{"fsck.fat", "mtype"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s is not installed (make deps installs dosfstools and mtools)", tool)
		}
	}
	loader := bytes.Repeat([]byte{0x4d, 0x5a, 0x90, 0}, 40000)
	p, _ := writeESP(t, loader)
	if b, err := exec.Command("fsck.fat", "-n", "-v", p).CombinedOutput(); err != nil || !strings.Contains(string(b), "32 bit entries") {
		t.Errorf("fsck.fat -n: %v\n%s", err, b)
	}
	cmd := exec.Command("mtype", "-i", p, "::/efi/boot/bootx64.efi")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	got, err := cmd.Output()
	if err != nil || !bytes.Equal(got, loader) {
		t.Errorf("mtype read %d bytes (%v), want the %d-byte loader", len(got), err, len(loader))
	}
}

// TestUEFIDiskPartitions writes a whole UEFI disk and reads it back the way
// the kernel finds its filesystems: the ESP as entry #0, boot and root after.
func TestUEFIDiskPartitions(t *testing.T) {
	stage2 := make([]byte, 2*SectorSize)
	boot := make([]byte, SectorSize)
	binary.LittleEndian.PutUint64(boot[regionOffset+8:], uint64(len(stage2)))
	binary.LittleEndian.PutUint32(boot[regionOffset+16:], regionFS)
	boot[510], boot[511] = 0x55, 0xaa
	bl, err := ParseBootImg(append(boot, stage2...))
	if err != nil {
		t.Fatal(err)
	}
	tree := NewTree()
	if err := tree.Add(Entry{Path: "/kernel", Kind: KindFile, Data: []byte("kernel")}); err != nil {
		t.Fatal(err)
	}
	bootFS, err := LayoutTFS(tree, nil, TFSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rtree := NewTree()
	if err := rtree.Add(Entry{Path: "/hello", Kind: KindFile, Data: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	rootFS, err := LayoutTFS(rtree, nil, TFSOptions{Slack: RootSlack})
	if err != nil {
		t.Fatal(err)
	}
	esp, err := NewESP([]byte("loader"), ESPLoader)
	if err != nil {
		t.Fatal(err)
	}
	d := &UEFIDisk{NanosDisk: &NanosDisk{Boot: bl, BootFS: bootFS, RootFS: rootFS}, ESP: esp}
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := d.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	mbr := make([]byte, SectorSize)
	f.ReadAt(mbr, 0)
	parts, err := ReadPartitions(mbr)
	if err != nil {
		t.Fatal(err)
	}
	espOff, bootOff, rootOff := d.offsets()
	want := []Partition{
		{Type: partTypeEFI, LBA: uint32(espOff / SectorSize), Sectors: espSectors, Bootable: true},
		{Type: partTypeLinux, LBA: uint32(bootOff / SectorSize), Sectors: uint32(bootFS.SizeSecs), Bootable: true},
		{Type: partTypeLinux, LBA: uint32(rootOff / SectorSize), Sectors: uint32(rootFS.SizeSecs), Bootable: true},
		{},
	}
	for i := range want {
		if parts[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, parts[i], want[i])
		}
	}
	if want[0].LBA != 1+2+KlogSize/SectorSize || bootOff-espOff != ESPSize {
		t.Errorf("ESP at LBA %d, %d bytes; want right after the klog area, 33 MiB", want[0].LBA, bootOff-espOff)
	}
	_, root, err := OpenNanosDisk(f, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	n, err := root.Lookup("/hello")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := root.ReadFile(n); err != nil || string(b) != "hi" {
		t.Errorf("/hello reads %q, %v", b, err)
	}
}
