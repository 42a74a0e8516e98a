package imgfmt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/klauspost/compress/zlib"
	"os"

	goerrors "github.com/go-errors/errors"
)

// Stream-optimised VMDK (VMware's Virtual Disk Format 5.0, "Stream-Optimized
// Compressed Sparse Extents"), what AWS and vSphere import: a header whose
// grain directory is "at the end", the descriptor, then each non-zero
// 64 KiB grain zlib-compressed behind a grain marker, then the grain
// tables, the grain directory, a footer (the header with the directory's
// offset) and an end-of-stream marker. Written front to back, so it could
// be streamed.
const (
	vmdkSector      = 512
	vmdkGrainSecs   = chunkSize / vmdkSector // 128 sectors, 64 KiB
	vmdkGTEntries   = 512
	vmdkGTSecs      = vmdkGTEntries * 4 / vmdkSector
	vmdkGDAtEnd     = ^uint64(0)
	vmdkFlags       = 1 | 1<<16 | 1<<17 // newline test, compressed grains, markers
	vmdkMarkerEOS   = 0
	vmdkMarkerGT    = 1
	vmdkMarkerGD    = 2
	vmdkMarkerFoot  = 3
	vmdkDescSectors = 2
)

func vmdkHeader(capacity, gdOffset uint64) []byte {
	h := make([]byte, vmdkSector)
	le := binary.LittleEndian
	copy(h[0:], "KDMV")
	le.PutUint32(h[4:], 3) // version 3: compressed grains
	le.PutUint32(h[8:], vmdkFlags)
	le.PutUint64(h[12:], capacity)
	le.PutUint64(h[20:], vmdkGrainSecs)
	le.PutUint64(h[28:], 1) // descriptor at sector 1
	le.PutUint64(h[36:], vmdkDescSectors)
	le.PutUint32(h[44:], vmdkGTEntries)
	le.PutUint64(h[48:], 0) // no redundant directory
	le.PutUint64(h[56:], gdOffset)
	le.PutUint64(h[64:], 1+vmdkDescSectors) // overhead: grains start after the descriptor
	h[72] = 0                               // cleanly closed
	copy(h[73:], "\n \r\n")                 // the newline-corruption test bytes
	le.PutUint16(h[77:], 1)                 // deflate
	return h
}

// vmdkDescriptor is the text descriptor; CID comes from the content so
// the same image gives the same file.
func vmdkDescriptor(s *source, capacity uint64) []byte {
	id := s.uuid("vmdk")
	cyl := min(capacity/(16*63), 16383)
	d := fmt.Sprintf(`# Disk DescriptorFile
version=1
CID=%08x
parentCID=ffffffff
createType="streamOptimized"

# Extent description
RW %d SPARSE "disk.vmdk"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "16"
ddb.geometry.sectors = "63"
ddb.adapterType = "ide"
`, binary.LittleEndian.Uint32(id[:]), capacity, cyl)
	b := make([]byte, vmdkDescSectors*vmdkSector)
	copy(b, d)
	return b
}

func vmdkMarker(val uint64, typ uint32) []byte {
	m := make([]byte, vmdkSector)
	binary.LittleEndian.PutUint64(m[0:], val)
	binary.LittleEndian.PutUint32(m[12:], typ)
	return m
}

func writeVMDK(dst *os.File, s *source) error {
	capacity := uint64(roundUp(s.size, vmdkSector) / vmdkSector)
	w := bufio.NewWriterSize(dst, 1<<20)
	var pos uint64 // sectors written
	put := func(b []byte) error {
		if len(b)%vmdkSector != 0 {
			return fmt.Errorf("vmdk: unaligned write of %d bytes", len(b))
		}
		pos += uint64(len(b) / vmdkSector)
		_, err := w.Write(b)
		return err
	}
	if err := put(vmdkHeader(capacity, vmdkGDAtEnd)); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := put(vmdkDescriptor(s, capacity)); err != nil {
		return goerrors.Wrap(err, 0)
	}
	grains := s.chunks()
	gts := (grains + vmdkGTEntries - 1) / vmdkGTEntries
	gt := make([]uint32, gts*vmdkGTEntries) // grain → sector, 0 = zero grain
	buf := make([]byte, chunkSize)
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	for g, u := range s.used {
		if !u {
			continue
		}
		if err := s.read(int64(g), buf); err != nil {
			return err
		}
		// A grain marker (LBA, compressed size) directly followed by the
		// compressed bytes, padded to a sector.
		z.Reset()
		z.Write(make([]byte, 12))
		zw.Reset(&z)
		if _, err := zw.Write(buf); err != nil {
			return goerrors.Wrap(err, 0)
		}
		if err := zw.Close(); err != nil {
			return goerrors.Wrap(err, 0)
		}
		rec := z.Bytes()
		binary.LittleEndian.PutUint64(rec[0:], uint64(g)*vmdkGrainSecs)
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(rec)-12))
		gt[g] = uint32(pos)
		if err := put(append(rec, make([]byte, roundUp(int64(len(rec)), vmdkSector)-int64(len(rec)))...)); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	// Grain tables, each behind its marker; a table with no grain is not
	// written and its directory entry stays 0.
	gd := make([]byte, roundUp(gts*4, vmdkSector))
	tbl := make([]byte, vmdkGTSecs*vmdkSector)
	for t := int64(0); t < gts; t++ {
		if !s.anyUsed(t*vmdkGTEntries, (t+1)*vmdkGTEntries) {
			continue
		}
		if err := put(vmdkMarker(vmdkGTSecs, vmdkMarkerGT)); err != nil {
			return goerrors.Wrap(err, 0)
		}
		binary.LittleEndian.PutUint32(gd[t*4:], uint32(pos))
		for i := 0; i < vmdkGTEntries; i++ {
			binary.LittleEndian.PutUint32(tbl[i*4:], gt[t*vmdkGTEntries+int64(i)])
		}
		if err := put(tbl); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	if err := put(vmdkMarker(uint64(len(gd)/vmdkSector), vmdkMarkerGD)); err != nil {
		return goerrors.Wrap(err, 0)
	}
	gdOff := pos
	if err := put(gd); err != nil {
		return goerrors.Wrap(err, 0)
	}
	for _, b := range [][]byte{vmdkMarker(1, vmdkMarkerFoot), vmdkHeader(capacity, gdOff), vmdkMarker(0, vmdkMarkerEOS)} {
		if err := put(b); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	if err := w.Flush(); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}
