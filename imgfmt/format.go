// Package imgfmt writes a raw disk image in the formats hypervisors and
// clouds import: qcow2, stream-optimised VMDK, fixed VHD, VHDX and GCP's
// tar.gz. Every writer reads only the raw image's data (holes are skipped
// through SEEK_DATA), names its identifiers after the content, and so
// writes the same bytes for the same raw image.
package imgfmt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"

	goerrors "github.com/go-errors/errors"
	"golang.org/x/sys/unix"
)

// Format is an output format.
type Format string

// The formats ops writes.
const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
	VMDK  Format = "vmdk" // stream-optimised
	VHD   Format = "vhd"  // fixed, 1 MiB-aligned size
	VHDX  Format = "vhdx" // dynamic
	GCP   Format = "gcp"  // tar.gz holding a sparse disk.raw
)

// Formats lists every format in the order help texts show them.
func Formats() []Format { return []Format{Raw, QCOW2, VMDK, VHD, VHDX, GCP} }

// Ext is the file extension a file of this format gets.
func (f Format) Ext() string {
	if f == GCP {
		return ".tar.gz"
	}
	return "." + string(f)
}

// ParseFormat reads a --format value.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if strings.EqualFold(s, string(f)) {
			return f, nil
		}
	}
	return "", fmt.Errorf("format %q is not one ops writes; use one of %s", s, formatList())
}

func formatList() string {
	var s []string
	for _, f := range Formats() {
		s = append(s, string(f))
	}
	return strings.Join(s, ", ")
}

// Target is a place images are imported into, by nanovms/ops's
// `image create -t` name.
type Target struct {
	Name   string
	Format Format
}

// targets maps nanovms/ops's target names to the format each importer
// takes. AWS takes raw too; the stream-optimised VMDK is compressed, so
// it is the smaller upload.
var targets = map[string]Format{
	"gcp":       GCP,
	"aws":       VMDK,
	"vsphere":   VMDK,
	"azure":     VHD,
	"hyper-v":   VHDX,
	"openstack": QCOW2,
	"proxmox":   QCOW2,
	"onprem":    Raw,
}

// TargetNames lists the targets ParseTarget knows, sorted.
func TargetNames() []string {
	var s []string
	for k := range targets {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// ParseTarget reads an `image create -t` value.
func ParseTarget(s string) (Target, error) {
	name := strings.ToLower(s)
	if name == "hyperv" {
		name = "hyper-v"
	}
	f, ok := targets[name]
	if !ok {
		return Target{}, fmt.Errorf("target %q is not one ops makes images for; use one of %s", s, strings.Join(TargetNames(), ", "))
	}
	return Target{Name: name, Format: f}, nil
}

// chunkSize is the granularity at which the raw image is read and
// zero chunks are skipped: qcow2's cluster and VMDK's grain.
const chunkSize = 64 << 10

// source is a raw image: its size, which 64 KiB chunks hold data, and an
// identity derived from the data, from which the formats' UUIDs come.
type source struct {
	r    io.ReaderAt
	size int64
	used []bool
	id   [32]byte
}

func (s *source) chunks() int64 { return (s.size + chunkSize - 1) / chunkSize }

// read reads chunk i into buf (chunkSize bytes), zero past the end.
func (s *source) read(i int64, buf []byte) error {
	off := i * chunkSize
	n := min(chunkSize, s.size-off)
	if _, err := s.r.ReadAt(buf[:n], off); err != nil {
		return goerrors.Errorf("reading the raw image at %d: %w", off, err)
	}
	clear(buf[n:])
	return nil
}

// anyUsed reports whether any chunk in [from, to) holds data.
func (s *source) anyUsed(from, to int64) bool {
	for i := from; i < min(to, int64(len(s.used))); i++ {
		if s.used[i] {
			return true
		}
	}
	return false
}

// uuid is a 16-byte identifier derived from the content and a label, so
// two formats of one image (or two identifiers in one file) differ.
func (s *source) uuid(label string) [16]byte {
	h := sha256.Sum256(append(s.id[:], label...))
	var u [16]byte
	copy(u[:], h[:])
	u[6] = u[6]&0x0f | 0x50 // a name-based UUID (version 5 style)
	u[8] = u[8]&0x3f | 0x80
	return u
}

// scan reads the raw image f once: which chunks hold non-zero bytes, and
// a hash of them. Holes the filesystem reports are not read.
func scan(f *os.File) (*source, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	s := &source{r: f, size: st.Size()}
	s.used = make([]bool, s.chunks())
	h := sha256.New()
	var hdr [16]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(s.size))
	h.Write(hdr[:8])
	buf := make([]byte, chunkSize)
	zero := make([]byte, chunkSize)
	exts, err := dataExtents(f, s.size)
	if err != nil {
		return nil, err
	}
	for _, e := range exts {
		for i := e[0] / chunkSize; i*chunkSize < e[1]; i++ {
			if s.used[i] {
				continue // an extent boundary inside a chunk read already
			}
			if err := s.read(i, buf); err != nil {
				return nil, err
			}
			if bytes.Equal(buf, zero) {
				continue
			}
			s.used[i] = true
			binary.LittleEndian.PutUint64(hdr[:], uint64(i))
			h.Write(hdr[:8])
			h.Write(buf)
		}
	}
	copy(s.id[:], h.Sum(nil))
	return s, nil
}

// dataExtents lists [start, end) byte ranges of f that may hold data,
// asking the filesystem with SEEK_DATA/SEEK_HOLE; where it cannot tell,
// the whole file is one extent.
func dataExtents(f *os.File, size int64) ([][2]int64, error) {
	var out [][2]int64
	for off := int64(0); off < size; {
		start, err := f.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, syscall.ENXIO) {
			break // only a hole from off to the end
		}
		if err != nil {
			return [][2]int64{{0, size}}, nil
		}
		end, err := f.Seek(start, unix.SEEK_HOLE)
		if err != nil {
			return [][2]int64{{0, size}}, nil
		}
		end = min(end, size)
		out = append(out, [2]int64{start, end})
		off = end
	}
	return out, nil
}

// Convert writes the raw image src as format f into dst, which must be
// empty. Raw is a sparse copy.
func Convert(dst, src *os.File, f Format) error {
	s, err := scan(src)
	if err != nil {
		return err
	}
	switch f {
	case Raw:
		err = writeRaw(dst, s, s.size)
	case QCOW2:
		err = writeQCOW2(dst, s)
	case VMDK:
		err = writeVMDK(dst, s)
	case VHD:
		err = writeVHD(dst, s)
	case VHDX:
		err = writeVHDX(dst, s)
	case GCP:
		err = writeGCP(dst, s)
	default:
		return fmt.Errorf("format %q is not one ops writes; use one of %s", f, formatList())
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", f, err)
	}
	return nil
}

// writeRaw copies the chunks holding data to the same offsets of dst and
// sizes dst to size (≥ the image), leaving the rest a hole.
func writeRaw(dst *os.File, s *source, size int64) error {
	if err := dst.Truncate(size); err != nil {
		return goerrors.Wrap(err, 0)
	}
	buf := make([]byte, chunkSize)
	for i, u := range s.used {
		if !u {
			continue
		}
		if err := s.read(int64(i), buf); err != nil {
			return err
		}
		n := min(chunkSize, s.size-int64(i)*chunkSize)
		if _, err := dst.WriteAt(buf[:n], int64(i)*chunkSize); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	return nil
}

// roundUp rounds n up to a multiple of m.
func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }
