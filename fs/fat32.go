package fs

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"
)

// A minimal FAT32 writer, enough for an EFI System Partition: a fixed
// size, one sector a cluster, a few files in folders, each stored in one
// linear run of clusters. Names are 8.3 and upper case (FAT matches names
// without regard to case, and UEFI firmware looks for \EFI\BOOT\BOOTX64.EFI
// so). Timestamps are fixed so the same files give the same bytes.

const (
	fatReserved   = 32 // sectors before the first FAT, as mkfs.fat makes them
	fatCount      = 2
	fatMinCluster = 65525 // fewer clusters and readers take it for FAT16
	fatDirEntry   = 32
	fatEOC        = 0x0fffffff
	fatDate       = 1<<5 | 1 // 1980-01-01, the first date FAT can hold
	fatAttrDir    = 0x10
	fatAttrFile   = 0x20
)

// FATFile is a file to put in a FAT32 filesystem, at an absolute path.
type FATFile struct {
	Path string
	Data []byte
}

// FAT32 is a laid-out FAT32 filesystem, ready to write.
type FAT32 struct {
	Sectors uint32
	fatSecs uint32
	serial  uint32
	fat     []uint32 // entries of the clusters in use (and the two reserved)
	runs    []fatRun // cluster contents
}

type fatRun struct {
	cluster uint32
	data    []byte
}

type fatDir struct {
	name    string // 8.3, padded: 11 bytes
	cluster uint32
	dirs    map[string]*fatDir
	files   map[string]*fatFile
}

type fatFile struct {
	data    []byte
	cluster uint32 // 0 for an empty file
}

// shortName turns a path element into its 8.3 directory-entry form (11
// bytes, space padded), or says why it cannot.
func shortName(elem string) (string, error) {
	base, ext, _ := strings.Cut(elem, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || strings.Contains(ext, ".") {
		return "", fmt.Errorf("%q is not an 8.3 name (up to 8 characters, a dot, up to 3)", elem)
	}
	up := strings.ToUpper(base + ext)
	for _, r := range up {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'()-@^_`{}~", r)) {
			return "", fmt.Errorf("%q: %q cannot be in an 8.3 name", elem, r)
		}
	}
	return fmt.Sprintf("%-8s%-3s", strings.ToUpper(base), strings.ToUpper(ext)), nil
}

// newFAT32 lays out a FAT32 filesystem of the given size holding files.
// serial is the volume serial number.
func newFAT32(sectors, serial uint32, files []FATFile) (*FAT32, error) {
	// The FAT must hold an entry for every cluster; the clusters are what
	// the FATs leave. Grow the FAT until it covers them.
	var fatSecs, clusters uint32
	for fatSecs = 1; ; fatSecs++ {
		if fatReserved+fatCount*fatSecs >= sectors {
			return nil, fmt.Errorf("a FAT32 filesystem of %d sectors has no room for data", sectors)
		}
		clusters = sectors - fatReserved - fatCount*fatSecs
		if (clusters+2)*4 <= fatSecs*SectorSize {
			break
		}
	}
	if clusters < fatMinCluster {
		return nil, fmt.Errorf("a FAT32 filesystem needs at least %d clusters; %d sectors give %d", fatMinCluster, sectors, clusters)
	}
	root := &fatDir{dirs: map[string]*fatDir{}, files: map[string]*fatFile{}}
	for _, f := range files {
		elems := strings.Split(strings.Trim(f.Path, "/"), "/")
		d := root
		for i, e := range elems {
			n, err := shortName(e)
			if err != nil {
				return nil, fmt.Errorf("FAT path %s: %w", f.Path, err)
			}
			_, isFile := d.files[n]
			sub, isDir := d.dirs[n]
			if i == len(elems)-1 {
				if isFile || isDir {
					return nil, fmt.Errorf("FAT path %s is given twice", f.Path)
				}
				d.files[n] = &fatFile{data: f.Data}
				break
			}
			if isFile {
				return nil, fmt.Errorf("FAT path %s: %s is a file", f.Path, e)
			}
			if !isDir {
				sub = &fatDir{name: n, dirs: map[string]*fatDir{}, files: map[string]*fatFile{}}
				d.dirs[n] = sub
			}
			d = sub
		}
	}
	fs := &FAT32{Sectors: sectors, fatSecs: fatSecs, serial: serial, fat: []uint32{0x0ffffff8, fatEOC}}
	// Clusters go out in order: folders breadth first from the root
	// (cluster 2), then the files.
	alloc := func(n int) uint32 {
		first := uint32(len(fs.fat))
		n = max(n, 1)
		for i := 0; i < n; i++ {
			next := uint32(len(fs.fat)) + 1
			if i == n-1 {
				next = fatEOC
			}
			fs.fat = append(fs.fat, next)
		}
		return first
	}
	dirSize := func(d *fatDir, isRoot bool) int {
		n := len(d.dirs) + len(d.files)
		if !isRoot {
			n += 2 // . and ..
		}
		return (n*fatDirEntry + SectorSize - 1) / SectorSize
	}
	var order []*fatDir
	root.cluster = alloc(dirSize(root, true))
	for q := []*fatDir{root}; len(q) > 0; q = q[1:] {
		d := q[0]
		order = append(order, d)
		for _, n := range sortedNames(d.dirs) {
			sub := d.dirs[n]
			sub.cluster = alloc(dirSize(sub, false))
			q = append(q, sub)
		}
	}
	var fileRuns []fatRun
	for _, d := range order {
		for _, n := range sortedNames(d.files) {
			f := d.files[n]
			if len(f.data) == 0 {
				continue
			}
			f.cluster = alloc((len(f.data) + SectorSize - 1) / SectorSize)
			fileRuns = append(fileRuns, fatRun{f.cluster, f.data})
		}
	}
	if uint32(len(fs.fat)) > clusters+2 {
		return nil, fmt.Errorf("the files need %d clusters; a FAT32 filesystem of %d sectors has %d", len(fs.fat)-2, sectors, clusters)
	}
	parent := map[*fatDir]uint32{}
	for _, d := range order {
		b := make([]byte, dirSize(d, d == root)*SectorSize)
		i := 0
		put := func(name string, attr byte, cluster uint32, size int) {
			e := b[i*fatDirEntry:]
			copy(e[0:11], name)
			e[11] = attr
			binary.LittleEndian.PutUint16(e[16:], fatDate) // created
			binary.LittleEndian.PutUint16(e[18:], fatDate) // accessed
			binary.LittleEndian.PutUint16(e[20:], uint16(cluster>>16))
			binary.LittleEndian.PutUint16(e[24:], fatDate) // modified
			binary.LittleEndian.PutUint16(e[26:], uint16(cluster))
			binary.LittleEndian.PutUint32(e[28:], uint32(size))
			i++
		}
		if d != root {
			put(".          ", fatAttrDir, d.cluster, 0)
			put("..         ", fatAttrDir, parent[d], 0) // 0 means the root
		}
		for _, n := range sortedNames(d.dirs) {
			sub := d.dirs[n]
			if d != root {
				parent[sub] = d.cluster
			}
			put(n, fatAttrDir, sub.cluster, 0)
		}
		for _, n := range sortedNames(d.files) {
			f := d.files[n]
			put(n, fatAttrFile, f.cluster, len(f.data))
		}
		fs.runs = append(fs.runs, fatRun{d.cluster, b})
	}
	fs.runs = append(fs.runs, fileRuns...)
	return fs, nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// bootSector is the FAT32 boot sector (BPB). Its code only reports that
// the partition is not bootable (INT 18h), as BIOS never boots an ESP.
func (fs *FAT32) bootSector() []byte {
	b := make([]byte, SectorSize)
	le := binary.LittleEndian
	copy(b[0:], []byte{0xeb, 0x58, 0x90})
	copy(b[3:11], "OPS     ")
	le.PutUint16(b[11:], SectorSize)
	b[13] = 1 // sectors a cluster
	le.PutUint16(b[14:], fatReserved)
	b[16] = fatCount
	b[21] = 0xf8             // fixed disk
	le.PutUint16(b[24:], 32) // sectors a track and heads: unused, as mkfs.fat sets them
	le.PutUint16(b[26:], 64)
	le.PutUint32(b[32:], fs.Sectors)
	le.PutUint32(b[36:], fs.fatSecs)
	le.PutUint32(b[44:], 2) // root folder cluster
	le.PutUint16(b[48:], 1) // FSInfo sector
	le.PutUint16(b[50:], 6) // backup boot sector
	b[64] = 0x80
	b[66] = 0x29
	le.PutUint32(b[67:], fs.serial)
	copy(b[71:82], "NO NAME    ")
	copy(b[82:90], "FAT32   ")
	copy(b[90:], []byte{0xcd, 0x18, 0xeb, 0xfe}) // int 18h; jmp $
	b[510], b[511] = 0x55, 0xaa
	return b
}

func (fs *FAT32) fsInfo() []byte {
	b := make([]byte, SectorSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 0x41615252)
	le.PutUint32(b[484:], 0x61417272)
	clusters := fs.Sectors - fatReserved - fatCount*fs.fatSecs
	le.PutUint32(b[488:], clusters+2-uint32(len(fs.fat))) // free clusters
	le.PutUint32(b[492:], uint32(len(fs.fat)))            // next free
	le.PutUint32(b[508:], 0xaa550000)
	return b
}

// WriteAt writes the filesystem at byte off of w. Only sectors holding
// something are written: the rest must already read as zeros.
func (fs *FAT32) WriteAt(w io.WriterAt, off int64) error {
	boot, info := fs.bootSector(), fs.fsInfo()
	fat := make([]byte, len(fs.fat)*4)
	for i, e := range fs.fat {
		binary.LittleEndian.PutUint32(fat[i*4:], e)
	}
	parts := []struct {
		sector int64
		data   []byte
	}{{0, boot}, {1, info}, {6, boot}, {7, info}}
	for i := int64(0); i < fatCount; i++ {
		parts = append(parts, struct {
			sector int64
			data   []byte
		}{fatReserved + i*int64(fs.fatSecs), fat})
	}
	data := int64(fatReserved + fatCount*fs.fatSecs)
	for _, r := range fs.runs {
		parts = append(parts, struct {
			sector int64
			data   []byte
		}{data + int64(r.cluster) - 2, r.data})
	}
	for _, p := range parts {
		if _, err := w.WriteAt(p.data, off+p.sector*SectorSize); err != nil {
			return err
		}
	}
	return nil
}
