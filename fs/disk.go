package fs

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Disk layout constants (see the Nanos image format notes, section 1).
const (
	KlogSize       = 4096
	BootFSSize     = 12 << 20
	RootSlack      = 512 << 10
	regionOffset   = 0x1aa
	regionFS       = 12
	partTableOff   = 0x1be
	partTypeLinux  = 0x83
	partTypeEFI    = 0xef
	mbrSignatureAt = 0x1fe
)

// BootLoader is a checked boot.img: stage1 (the MBR) followed by stage2.
type BootLoader struct {
	Data   []byte
	Stage2 uint64 // length of stage2, from the filesystem region record
}

// ParseBootImg checks a boot.img: the 55AA signature, the filesystem region
// record in the MBR, and a length that matches the record.
func ParseBootImg(b []byte) (*BootLoader, error) {
	if len(b) < SectorSize {
		return nil, fmt.Errorf("boot.img is %d bytes, shorter than one sector", len(b))
	}
	if b[mbrSignatureAt] != 0x55 || b[mbrSignatureAt+1] != 0xaa {
		return nil, errors.New("boot.img has no 55AA boot signature")
	}
	length := binary.LittleEndian.Uint64(b[regionOffset+8:])
	typ := binary.LittleEndian.Uint32(b[regionOffset+16:])
	if typ != regionFS {
		return nil, fmt.Errorf("boot.img has no filesystem region record (type %d, want %d)", typ, regionFS)
	}
	if uint64(len(b)) != SectorSize+length {
		return nil, fmt.Errorf("boot.img is %d bytes but its region record says stage2 is %d (want %d in all)", len(b), length, SectorSize+length)
	}
	return &BootLoader{Data: b, Stage2: length}, nil
}

// BootStub is the first sector of a disk whose kernel the machine loads
// itself (arm64: QEMU loads it, or the UEFI loader does): no boot code and
// no stage2, its filesystem region record saying so, byte for byte as
// Nanos's virt platform's mbr.hex. The klog area follows it, then the
// filesystems.
func BootStub() *BootLoader {
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint64(b[regionOffset:], 0x8000)
	binary.LittleEndian.PutUint32(b[regionOffset+16:], regionFS)
	b[mbrSignatureAt], b[mbrSignatureAt+1] = 0x55, 0xaa
	return &BootLoader{Data: b}
}

// Stage2Len is the length of stage2 a disk's first sector's filesystem
// region record gives (0 for the boot stub, whose machine loads the
// kernel itself), and false when the sector has no such record.
func Stage2Len(mbr []byte) (uint64, bool) {
	if len(mbr) < SectorSize || binary.LittleEndian.Uint32(mbr[regionOffset+16:]) != regionFS {
		return 0, false
	}
	return binary.LittleEndian.Uint64(mbr[regionOffset+8:]), true
}

// KlogOffset is where the kernel's exit record lies on a disk booted
// with boot: the 4 KiB right before the first partition.
func (b *BootLoader) KlogOffset() int64 { return SectorSize + int64(b.Stage2) }

// ParseKlog reads the Nanos kernel's exit record from the klog area: the
// program's exit code, and false when the area holds no record (the
// kernel writes one when the program exits with a code other than 0).
func ParseKlog(b []byte) (code int, ok bool) {
	if len(b) < 16 || string(b[:4]) != "KLOG" {
		return 0, false
	}
	return int(int32(binary.LittleEndian.Uint32(b[12:]))), true
}

// Partition is one MBR entry.
type Partition struct {
	Type     byte
	LBA      uint32
	Sectors  uint32
	Bootable bool
}

// chs encodes an LBA the way mkfs does (63 sectors a track, 255 heads).
func chs(lba uint64) [3]byte {
	c, h, s := lba/63/255, (lba/63)%255, lba%63+1
	if c > 1023 {
		c, h, s = 1023, 254, 63
	}
	return [3]byte{byte(h), byte(c>>8) | byte(s), byte(c)} // mkfs's placement, not the standard one
}

// PartTypeEFI is the MBR type of an EFI System Partition: a UEFI disk's
// first entry, before the boot and root filesystems.
const PartTypeEFI = partTypeEFI

// PutPartitions writes the four MBR partition entries into mbr.
func PutPartitions(mbr []byte, parts []Partition) error {
	if len(parts) > 4 {
		return errors.New("an MBR holds at most four partitions")
	}
	for i := 0; i < 4; i++ {
		e := mbr[partTableOff+16*i : partTableOff+16*i+16]
		clear(e)
		if i >= len(parts) {
			continue
		}
		p := parts[i]
		if p.Bootable {
			e[0] = 0x80
		}
		first := chs(uint64(p.LBA))
		copy(e[1:4], first[:])
		e[4] = p.Type
		last := chs(uint64(p.LBA) + uint64(p.Sectors) - 1)
		copy(e[5:8], last[:])
		binary.LittleEndian.PutUint32(e[8:], p.LBA)
		binary.LittleEndian.PutUint32(e[12:], p.Sectors)
	}
	mbr[mbrSignatureAt], mbr[mbrSignatureAt+1] = 0x55, 0xaa
	return nil
}

// ReadPartitions decodes the four MBR entries of a disk's first sector.
func ReadPartitions(mbr []byte) ([]Partition, error) {
	if len(mbr) < SectorSize || mbr[mbrSignatureAt] != 0x55 || mbr[mbrSignatureAt+1] != 0xaa {
		return nil, errors.New("no MBR boot signature")
	}
	var out []Partition
	for i := 0; i < 4; i++ {
		e := mbr[partTableOff+16*i:]
		out = append(out, Partition{
			Bootable: e[0] == 0x80,
			Type:     e[4],
			LBA:      binary.LittleEndian.Uint32(e[8:]),
			Sectors:  binary.LittleEndian.Uint32(e[12:]),
		})
	}
	return out, nil
}

// NanosDisk describes a whole Nanos disk: boot loader, boot filesystem
// (kernel and klibs) and root filesystem (program tree and manifest).
type NanosDisk struct {
	Boot   *BootLoader
	BootFS *TFS
	RootFS *TFS
}

// offsets returns the byte offsets of the boot and root filesystems.
func (d *NanosDisk) offsets() (boot, root int64) {
	boot = SectorSize + int64(d.Boot.Stage2) + KlogSize
	return boot, boot + int64(d.BootFS.SizeSecs)*SectorSize
}

// Size is the image size in bytes.
func (d *NanosDisk) Size() int64 {
	_, root := d.offsets()
	return root + int64(d.RootFS.SizeSecs)*SectorSize
}

// WriteTo writes the image into f, which must be empty. The file is
// extended to its full size first, so free space stays sparse.
func (d *NanosDisk) WriteTo(f *os.File) (err error) {
	defer wrapIO(&err)
	boot, root, err := d.checkedOffsets()
	if err != nil {
		return err
	}
	if err := f.Truncate(d.Size()); err != nil {
		return err
	}
	if err := writeFilesystems(f, d.BootFS, d.RootFS, boot, root); err != nil {
		return err
	}
	mbr, err := d.mbr()
	if err != nil {
		return err
	}
	_, err = f.WriteAt(mbr, 0)
	return err
}

func (d *NanosDisk) checkedOffsets() (boot, root int64, err error) {
	boot, root = d.offsets()
	if boot%SectorSize != 0 {
		return 0, 0, errors.New("boot.img length is not a whole number of sectors")
	}
	return boot, root, nil
}

// mbr is the boot loader with the partition table filled in.
func (d *NanosDisk) mbr() ([]byte, error) {
	boot, root := d.offsets()
	mbr := append([]byte(nil), d.Boot.Data...)
	err := PutPartitions(mbr, []Partition{
		{Type: partTypeLinux, LBA: uint32(boot / SectorSize), Sectors: uint32(d.BootFS.SizeSecs), Bootable: true},
		{Type: partTypeLinux, LBA: uint32(root / SectorSize), Sectors: uint32(d.RootFS.SizeSecs), Bootable: true},
	})
	return mbr, err
}

// A disk whose root filesystem was laid out with TFSOptions.Last is
// written in two parts that never share a sector (see the TFS's): the
// shared part (the boot loader past the MBR, the boot filesystem and the
// root filesystem's shared files), the same in every disk of the same
// kernel and shared files, and the disk's own part (the MBR with the
// partitions, which hold the root filesystem's size, and the root
// filesystem's log and own files). Read over each other, they are the
// disk WriteTo writes.

// SharedKey writes to w what the disk's shared part is made of beyond
// the files of the boot filesystem, which the caller names (their
// stamps): where the filesystems lie, the boot loader, and the root
// filesystem's shared part (TFS.SharedKey, whose settled it returns).
func (d *NanosDisk) SharedKey(w io.Writer, now time.Time) (settled bool, err error) {
	boot, root := d.offsets()
	fmt.Fprintf(w, "disk %d %d %d %x\n", boot, root, d.BootFS.SizeSecs, sha256.Sum256(d.Boot.Data))
	return d.RootFS.SharedKey(w, now)
}

// WriteShared writes the shared part into f, which must be empty, and
// returns the root filesystem's shared digests, which WriteOwn needs. f
// ends where the part does.
func (d *NanosDisk) WriteShared(f *os.File) (digests [][32]byte, err error) {
	defer wrapIO(&err)
	boot, root, err := d.checkedOffsets()
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(root + d.RootFS.sharedEnd()); err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(d.Boot.Data[min(SectorSize, len(d.Boot.Data)):], SectorSize); err != nil {
		return nil, err
	}
	err = withFD(f, func(fd int) error {
		if err := d.BootFS.write(fd, boot); err != nil {
			return fmt.Errorf("boot filesystem: %w", err)
		}
		if digests, err = d.RootFS.writeShared(fd, root); err != nil {
			return fmt.Errorf("root filesystem: %w", err)
		}
		return nil
	})
	return digests, err
}

// WriteOwn writes the disk's own part into f, which must be empty,
// extending it to the disk's size; shared are WriteShared's digests for
// a disk of the same shared part.
func (d *NanosDisk) WriteOwn(f *os.File, shared [][32]byte) (err error) {
	defer wrapIO(&err)
	_, root, err := d.checkedOffsets()
	if err != nil {
		return err
	}
	if err := f.Truncate(d.Size()); err != nil {
		return err
	}
	err = withFD(f, func(fd int) error {
		if err := d.RootFS.writeOwn(fd, root, shared); err != nil {
			return fmt.Errorf("root filesystem: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	mbr, err := d.mbr()
	if err != nil {
		return err
	}
	_, err = f.WriteAt(mbr[:min(SectorSize, len(mbr))], 0)
	return err
}

// writeFilesystems writes the boot and root filesystems at their byte
// offsets: one after the other while each needs its hash (each keeps both
// CPUs busy), side by side when the boot filesystem's UUID is known and
// writing it is only a copy.
func writeFilesystems(f *os.File, bootFS, rootFS *TFS, boot, root int64) error {
	return withFD(f, func(fd int) error {
		writeBoot := func() error {
			if err := bootFS.write(fd, boot); err != nil {
				return fmt.Errorf("boot filesystem: %w", err)
			}
			return nil
		}
		var wg sync.WaitGroup
		var bootErr error
		if _, known := bootFS.UUID(); known {
			wg.Add(1)
			go func() {
				defer wg.Done()
				bootErr = writeBoot()
			}()
		} else if bootErr = writeBoot(); bootErr != nil {
			return bootErr
		}
		err := rootFS.write(fd, root)
		wg.Wait()
		if err != nil {
			return fmt.Errorf("root filesystem: %w", err)
		}
		return bootErr
	})
}

// OpenNanosDisk finds the boot and root filesystems of a Nanos disk image
// by the same partition rule the kernel uses.
func OpenNanosDisk(r io.ReaderAt, size int64) (boot, root *Reader, err error) {
	defer wrapIO(&err)
	mbr := make([]byte, SectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, nil, fmt.Errorf("reading the MBR: %w", err)
	}
	parts, err := ReadPartitions(mbr)
	if err != nil {
		return nil, nil, err
	}
	bi, ri := 0, 1
	if parts[0].Type == partTypeEFI {
		bi, ri = 1, 2
	}
	open := func(p Partition, sizeFromEntry bool) (*Reader, error) {
		off := int64(p.LBA) * SectorSize
		if p.LBA == 0 || off >= size {
			return nil, fmt.Errorf("partition at LBA %d lies outside the %d-byte image", p.LBA, size)
		}
		n := size - off
		if sizeFromEntry {
			n = min(n, int64(p.Sectors)*SectorSize)
		}
		return OpenTFS(io.NewSectionReader(r, off, n), n)
	}
	if boot, err = open(parts[bi], true); err != nil {
		return nil, nil, fmt.Errorf("boot filesystem: %w", err)
	}
	if root, err = open(parts[ri], false); err != nil {
		return nil, nil, fmt.Errorf("root filesystem: %w", err)
	}
	return boot, root, nil
}
