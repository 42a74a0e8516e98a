package fs

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
)

// The UEFI layout Nanos's mkfs -u writes (format notes §1.7): an EFI System
// Partition of 33 MiB as MBR entry #0 (type 0xEF) holding the release's
// UEFI loader at \EFI\BOOT\BOOTX64.EFI, then the boot and root filesystems
// as entries #1 and #2. Stage1, stage2 and the klog area stay where they
// were, so BIOS boots the same disk: stage2, bootx64.efi and the kernel
// all take entries #1/#2 when entry #0 is an ESP.
const (
	ESPSize   = 33 << 20
	ESPLoader = "/EFI/BOOT/BOOTX64.EFI"
	// ESPLoaderARM64 is where arm64 firmware looks for its loader.
	ESPLoaderARM64 = "/EFI/BOOT/BOOTAA64.EFI"
	espSectors     = ESPSize / SectorSize
)

// NewESP lays out the EFI System Partition holding loader (bootx64.efi)
// at path (ESPLoader, or ESPLoaderARM64 for bootaa64.efi). Its volume
// serial comes from the loader's bytes, so it is reproducible.
func NewESP(loader []byte, path string) (*FAT32, error) {
	if len(loader) == 0 {
		return nil, errors.New("the UEFI loader is empty")
	}
	return newFAT32(espSectors, crc32.ChecksumIEEE(loader), []FATFile{{Path: path, Data: loader}})
}

// UEFIDisk is a Nanos disk with an EFI System Partition before its boot
// and root filesystems.
type UEFIDisk struct {
	*NanosDisk
	ESP *FAT32
}

// offsets returns the byte offsets of the ESP, the boot and the root
// filesystems.
func (d *UEFIDisk) offsets() (esp, boot, root int64) {
	esp = SectorSize + int64(d.Boot.Stage2) + KlogSize
	boot = esp + int64(d.ESP.Sectors)*SectorSize
	return esp, boot, boot + int64(d.BootFS.SizeSecs)*SectorSize
}

// Size is the image size in bytes.
func (d *UEFIDisk) Size() int64 {
	_, _, root := d.offsets()
	return root + int64(d.RootFS.SizeSecs)*SectorSize
}

// WriteTo writes the image into f, which must be empty; free space stays
// sparse.
func (d *UEFIDisk) WriteTo(f *os.File) (err error) {
	defer wrapIO(&err)
	esp, boot, root := d.offsets()
	if esp%SectorSize != 0 {
		return errors.New("boot.img length is not a whole number of sectors")
	}
	if err := f.Truncate(d.Size()); err != nil {
		return err
	}
	if err := d.ESP.WriteAt(f, esp); err != nil {
		return fmt.Errorf("EFI system partition: %w", err)
	}
	if err := writeFilesystems(f, d.BootFS, d.RootFS, boot, root); err != nil {
		return err
	}
	mbr := append([]byte(nil), d.Boot.Data...)
	if err := PutPartitions(mbr, []Partition{
		{Type: partTypeEFI, LBA: uint32(esp / SectorSize), Sectors: d.ESP.Sectors, Bootable: true},
		{Type: partTypeLinux, LBA: uint32(boot / SectorSize), Sectors: uint32(d.BootFS.SizeSecs), Bootable: true},
		{Type: partTypeLinux, LBA: uint32(root / SectorSize), Sectors: uint32(d.RootFS.SizeSecs), Bootable: true},
	}); err != nil {
		return err
	}
	_, err = f.WriteAt(mbr, 0)
	return err
}
