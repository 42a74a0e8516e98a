package imgfmt

import (
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"os"
	"strings"
	"unicode/utf16"

	goerrors "github.com/go-errors/errors"
)

// Dynamic VHDX ([MS-VHDX] v20160714), what Hyper-V takes: the file type
// identifier, two headers, two region tables, an empty 1 MiB log, the
// metadata region, the block allocation table, then the payload blocks
// that hold data. Blocks of zeros stay "not present".
const (
	vhdxMiB       = 1 << 20
	vhdxBlock     = 2 << 20 // small blocks keep a sparse disk small
	vhdxSector    = 512
	vhdxLogOff    = 1 * vhdxMiB
	vhdxLogLen    = 1 * vhdxMiB
	vhdxMetaOff   = 2 * vhdxMiB
	vhdxMetaLen   = 1 * vhdxMiB
	vhdxBATOff    = 3 * vhdxMiB
	vhdxChunk     = (1 << 23) * vhdxSector / vhdxBlock // payload blocks per sector bitmap block
	vhdxFullBlock = 6                                  // PAYLOAD_BLOCK_FULLY_PRESENT
)

// Well-known identifiers from the specification.
var (
	vhdxRegionBAT  = guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
	vhdxRegionMeta = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	vhdxFileParams = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	vhdxDiskSize   = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	vhdxPage83     = guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
	vhdxLogical    = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	vhdxPhysical   = guid("CDA348C7-445D-4471-9CC9-E9885251C556")
)

// guid encodes a GUID as Windows stores it: the first three groups
// little-endian, the rest as written.
func guid(s string) [16]byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("bad GUID literal " + s)
	}
	var g [16]byte
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g
}

// vhdxSum puts the CRC-32C of b (taken with its checksum field zero) at 4.
// The table is asked for here, not made in a package variable: crc32 makes
// it on first use and keeps it, so commands that write no VHDX never pay.
func vhdxSum(b []byte) {
	binary.LittleEndian.PutUint32(b[4:], 0)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func writeVHDX(dst *os.File, s *source) error {
	le := binary.LittleEndian
	blocks := (s.size + vhdxBlock - 1) / vhdxBlock
	entries := blocks + (blocks-1)/vhdxChunk
	batLen := roundUp(max(entries*8, 1), vhdxMiB)

	// Payload blocks go after the BAT, in guest order.
	bat := make([]byte, batLen)
	next := int64(vhdxBATOff) + batLen
	var present []int64
	per := int64(vhdxBlock / chunkSize)
	for b := int64(0); b < blocks; b++ {
		if !s.anyUsed(b*per, (b+1)*per) {
			continue // PAYLOAD_BLOCK_NOT_PRESENT: reads as zeros
		}
		idx := b + b/vhdxChunk // a sector bitmap entry follows every chunk of blocks
		le.PutUint64(bat[idx*8:], uint64(next/vhdxMiB)<<20|vhdxFullBlock)
		present = append(present, b)
		next += vhdxBlock
	}
	if err := dst.Truncate(next); err != nil {
		return goerrors.Wrap(err, 0)
	}

	// File type identifier.
	id := make([]byte, 64<<10)
	copy(id, "vhdxfile")
	for i, r := range utf16.Encode([]rune("ops")) {
		le.PutUint16(id[8+2*i:], r)
	}
	// Headers: both valid, the second current; no log to replay.
	hdr := func(seq uint64) []byte {
		h := make([]byte, 4<<10)
		copy(h, "head")
		le.PutUint64(h[8:], seq)
		fw, dw := s.uuid("vhdx file write"), s.uuid("vhdx data write")
		copy(h[16:], fw[:])
		copy(h[32:], dw[:])
		le.PutUint16(h[66:], 1) // version
		le.PutUint32(h[68:], vhdxLogLen)
		le.PutUint64(h[72:], vhdxLogOff)
		vhdxSum(h)
		return h
	}
	regions := make([]byte, 64<<10)
	copy(regions, "regi")
	le.PutUint32(regions[8:], 2)
	for i, r := range []struct {
		id       [16]byte
		off, len int64
	}{{vhdxRegionBAT, vhdxBATOff, batLen}, {vhdxRegionMeta, vhdxMetaOff, vhdxMetaLen}} {
		e := regions[16+32*i:]
		copy(e, r.id[:])
		le.PutUint64(e[16:], uint64(r.off))
		le.PutUint32(e[24:], uint32(r.len))
		le.PutUint32(e[28:], 1) // required
	}
	vhdxSum(regions)

	// Metadata: the table, then the items from 64 KiB on.
	meta := make([]byte, 128<<10)
	copy(meta, "metadata")
	const (
		required = 1 << 2
		virtual  = 1 << 1
	)
	page83 := s.uuid("vhdx disk id")
	items := []struct {
		id    [16]byte
		flags uint32
		val   []byte
	}{
		{vhdxFileParams, required, le.AppendUint32(le.AppendUint32(nil, vhdxBlock), 0)},
		{vhdxDiskSize, required | virtual, le.AppendUint64(nil, uint64(s.size))},
		{vhdxPage83, required | virtual, page83[:]},
		{vhdxLogical, required | virtual, le.AppendUint32(nil, vhdxSector)},
		{vhdxPhysical, required | virtual, le.AppendUint32(nil, vhdxSector)},
	}
	le.PutUint16(meta[10:], uint16(len(items)))
	off := 64 << 10
	for i, it := range items {
		e := meta[32+32*i:]
		copy(e, it.id[:])
		le.PutUint32(e[16:], uint32(off))
		le.PutUint32(e[20:], uint32(len(it.val)))
		le.PutUint32(e[24:], it.flags)
		copy(meta[off:], it.val)
		off += 8 * ((len(it.val) + 7) / 8)
	}

	for _, p := range []struct {
		b   []byte
		off int64
	}{{id, 0}, {hdr(1), 64 << 10}, {hdr(2), 128 << 10}, {regions, 192 << 10}, {regions, 256 << 10}, {meta, vhdxMetaOff}, {bat, vhdxBATOff}} {
		if _, err := dst.WriteAt(p.b, p.off); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	buf := make([]byte, chunkSize)
	pos := int64(vhdxBATOff) + batLen
	for _, b := range present {
		for c := b * per; c < (b+1)*per && c < int64(len(s.used)); c++ {
			if !s.used[c] {
				continue // the hole in the output file reads as zeros
			}
			if err := s.read(c, buf); err != nil {
				return err
			}
			if _, err := dst.WriteAt(buf, pos+(c-b*per)*chunkSize); err != nil {
				return goerrors.Wrap(err, 0)
			}
		}
		pos += vhdxBlock
	}
	return nil
}
