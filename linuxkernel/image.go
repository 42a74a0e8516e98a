package linuxkernel

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opsdev/ops/arch"
)

// imageHead is how much of a kernel file ImageArch needs: its headers, and
// enough of a gzip stream to inflate an arm64 Image's header from.
const imageHead = 64 << 10

// ImageArch is the architecture of a Linux kernel image, from its first
// bytes (up to 64 KiB; fewer from a shorter file):
//   - an x86 bzImage ("HdrS" at 0x202): amd64;
//   - an arm64 Image (the magic "ARM\x64" at 56), also gzip-compressed
//     (a vmlinuz as Ubuntu ships it; Debian's is the Image itself);
//   - an ELF vmlinux: its machine;
//   - another PE file (an EFI zboot image, "MZ" then "zimg"): its PE
//     machine, which is the kernel's.
func ImageArch(head []byte) (arch.Arch, error) {
	return imageArch(head, true)
}

func imageArch(b []byte, inflate bool) (arch.Arch, error) {
	switch {
	case len(b) >= 0x206 && string(b[0x202:0x206]) == "HdrS":
		return arch.AMD64, nil
	case len(b) >= 60 && string(b[56:60]) == "ARM\x64":
		return arch.ARM64, nil
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return elfArch(b)
	case inflate && bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return "", fmt.Errorf("gzip-compressed, but: %w", err)
		}
		// The head of the stream is all there is: a cut-off stream still
		// gives the bytes before the cut.
		out, _ := io.ReadAll(io.LimitReader(zr, 4096))
		if len(out) == 0 {
			return "", errors.New("gzip-compressed, but nothing inflates from its start")
		}
		a, err := imageArch(out, false)
		if err != nil {
			return "", fmt.Errorf("gzip-compressed: %w", err)
		}
		return a, nil
	case bytes.HasPrefix(b, []byte("MZ")):
		return peArch(b)
	}
	return "", errors.New("not a Linux kernel image (neither an x86 bzImage, an arm64 Image nor an ELF vmlinux)")
}

// elfArch is an ELF header's machine, as an architecture ops builds for.
func elfArch(b []byte) (arch.Arch, error) {
	if len(b) < 20 {
		return "", errors.New("an ELF file cut short")
	}
	var order binary.ByteOrder = binary.LittleEndian
	if b[5] == 2 { // EI_DATA: ELFDATA2MSB
		order = binary.BigEndian
	}
	m := elf.Machine(order.Uint16(b[18:]))
	if a, ok := arch.ForELF(m); ok {
		return a, nil
	}
	return "", fmt.Errorf("an ELF file for %v, an architecture ops does not build for", m)
}

// peArch is a PE file's machine, as an architecture ops builds for.
func peArch(b []byte) (arch.Arch, error) {
	if len(b) < 0x40 {
		return "", errors.New("a PE file cut short")
	}
	off := int64(binary.LittleEndian.Uint32(b[0x3c:]))
	if off < 0 || off+6 > int64(len(b)) || string(b[off:off+4]) != "PE\x00\x00" {
		return "", errors.New("an MZ file without a PE header (not a Linux kernel image)")
	}
	switch m := binary.LittleEndian.Uint16(b[off+4:]); m {
	case 0x8664: // IMAGE_FILE_MACHINE_AMD64
		return arch.AMD64, nil
	case 0xaa64: // IMAGE_FILE_MACHINE_ARM64
		return arch.ARM64, nil
	default:
		return "", fmt.Errorf("a PE file for machine %#04x, an architecture ops does not build for", m)
	}
}

// FileArch is the architecture of the kernel image in file p.
func FileArch(p string) (arch.Arch, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, imageHead)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	a, err := ImageArch(head[:n])
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return a, nil
}

// ArchError is a kernel image built for another architecture than the
// guest's.
type ArchError struct {
	File   string
	Kernel arch.Arch // the image's
	Want   arch.Arch // the guest's
}

func (e *ArchError) Error() string {
	return fmt.Sprintf("%s is a kernel for %s, not %s (the guest's architecture)", e.File, e.Kernel, e.Want)
}

// checkArch says whether the kernel image in p is for a: nil, an
// *ArchError, or why its architecture cannot be told.
func checkArch(p string, a arch.Arch) error {
	got, err := FileArch(p)
	if err != nil {
		return err
	}
	if got != a {
		return &ArchError{File: p, Kernel: got, Want: a}
	}
	return nil
}
