package imgfmt

import (
	"encoding/binary"
	"os"

	goerrors "github.com/go-errors/errors"
)

// Fixed VHD (Microsoft's Virtual Hard Disk Image Format Specification),
// what Azure imports: the raw disk, its size rounded up to a whole MiB
// (Azure rejects other sizes), then a 512-byte footer. The data part stays
// sparse.
const vhdAlign = 1 << 20

func writeVHD(dst *os.File, s *source) error {
	size := roundUp(max(s.size, 1), vhdAlign)
	if err := writeRaw(dst, s, size); err != nil {
		return err
	}
	if _, err := dst.WriteAt(vhdFooter(s, size), size); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

func vhdFooter(s *source, size int64) []byte {
	f := make([]byte, 512)
	be := binary.BigEndian
	copy(f[0:], "conectix")
	be.PutUint32(f[8:], 2)           // features: the reserved bit that must be set
	be.PutUint32(f[12:], 0x10000)    // version 1.0
	be.PutUint64(f[16:], ^uint64(0)) // data offset: none, a fixed disk
	be.PutUint32(f[24:], 0)          // timestamp: fixed, so the file is reproducible
	// Creator "qem2" is what QEMU reads as "the size is current_size, not
	// the CHS geometry" (Azure always uses current_size), so qemu-img and
	// QEMU see exactly size.
	copy(f[28:], "qem2")
	be.PutUint32(f[32:], 0x10000)
	copy(f[36:], "Wi2k")
	be.PutUint64(f[40:], uint64(size))
	be.PutUint64(f[48:], uint64(size))
	c, h, spt := vhdGeometry(size / 512)
	be.PutUint16(f[56:], c)
	f[58], f[59] = h, spt
	be.PutUint32(f[60:], 2) // fixed disk
	u := s.uuid("vhd")
	copy(f[68:], u[:])
	var sum uint32
	for _, b := range f {
		sum += uint32(b)
	}
	be.PutUint32(f[64:], ^sum)
	return f
}

// vhdGeometry is the specification's CHS algorithm (appendix "CHS
// calculation").
func vhdGeometry(sectors int64) (cyl uint16, heads, spt uint8) {
	sectors = min(sectors, 65535*16*255)
	var cth int64
	var h, st int64
	if sectors >= 65535*16*63 {
		st, h = 255, 16
		cth = sectors / st
	} else {
		st = 17
		cth = sectors / st
		h = max((cth+1023)/1024, 4)
		if cth >= h*1024 || h > 16 {
			st, h = 31, 16
			cth = sectors / st
		}
		if cth >= h*1024 {
			st, h = 63, 16
			cth = sectors / st
		}
	}
	return uint16(cth / h), uint8(h), uint8(st)
}
