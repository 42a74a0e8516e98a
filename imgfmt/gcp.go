package imgfmt

import (
	"bufio"
	"fmt"
	"github.com/klauspost/compress/gzip"
	"os"
	"strconv"

	goerrors "github.com/go-errors/errors"
)

// GCP's image import takes a gzip-compressed tar holding one file,
// disk.raw, written the way `tar --format=oldgnu -S` writes it: a GNU
// sparse member ('S') whose map lists the data regions, followed by only
// their bytes. Go's archive/tar reads this form but cannot write it, so it
// is written here. disk.raw is padded to a whole GiB, the unit Compute
// Engine sizes disks in; the padding is a hole and costs nothing.
const (
	gcpAlign      = 1 << 30
	tarBlock      = 512
	tarHdrSparse  = 4  // map entries in the main header
	tarExtSparse  = 21 // map entries in each extension block
	tarSparseOff  = 386
	tarExtFlagOff = 482
	tarRealOff    = 483
)

// tarNumber writes n into field as NUL-terminated octal, or base-256 (GNU)
// when octal does not fit.
func tarNumber(field []byte, n int64) {
	s := strconv.FormatInt(n, 8)
	if len(s) < len(field) {
		clear(field)
		copy(field[len(field)-1-len(s):], s)
		for i := 0; i < len(field)-1-len(s); i++ {
			field[i] = '0'
		}
		return
	}
	clear(field)
	for i := len(field) - 1; i > 0; i-- {
		field[i] = byte(n)
		n >>= 8
	}
	field[0] = 0x80
}

// sparseMap lists the data regions of s as (offset, length), merged, with
// the zero-length entry at the end GNU tar adds when the file ends in a hole.
func sparseMap(s *source, size int64) [][2]int64 {
	var m [][2]int64
	for i, u := range s.used {
		if !u {
			continue
		}
		off := int64(i) * chunkSize
		n := min(chunkSize, s.size-off)
		if k := len(m) - 1; k >= 0 && m[k][0]+m[k][1] == off {
			m[k][1] += n
		} else {
			m = append(m, [2]int64{off, n})
		}
	}
	if k := len(m) - 1; k < 0 || m[k][0]+m[k][1] < size {
		m = append(m, [2]int64{size, 0})
	}
	return m
}

// gnuSparseHeaders is the oldgnu header of a sparse member and its map
// extension blocks.
func gnuSparseHeaders(name string, size int64, m [][2]int64) []byte {
	var stored int64
	for _, e := range m {
		stored += e[1]
	}
	h := make([]byte, tarBlock)
	copy(h[0:100], name)
	tarNumber(h[100:108], 0o644)
	tarNumber(h[108:116], 0)
	tarNumber(h[116:124], 0)
	tarNumber(h[124:136], stored)
	tarNumber(h[136:148], 0) // mtime: fixed, so the archive is reproducible
	h[156] = 'S'
	copy(h[257:265], "ustar  \x00") // oldgnu magic and version
	copy(h[265:], "root")
	copy(h[297:], "root")
	putEntries := func(dst []byte, es [][2]int64) {
		for i, e := range es {
			tarNumber(dst[24*i:24*i+12], e[0])
			tarNumber(dst[24*i+12:24*i+24], e[1])
		}
	}
	first := m[:min(len(m), tarHdrSparse)]
	putEntries(h[tarSparseOff:], first)
	rest := m[len(first):]
	if len(rest) > 0 {
		h[tarExtFlagOff] = 1
	}
	tarNumber(h[tarRealOff:tarRealOff+12], size)
	// The checksum is the byte sum with the field read as spaces.
	copy(h[148:156], "        ")
	var sum int64
	for _, b := range h {
		sum += int64(b)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	out := h
	for len(rest) > 0 {
		ext := make([]byte, tarBlock)
		n := min(len(rest), tarExtSparse)
		putEntries(ext, rest[:n])
		rest = rest[n:]
		if len(rest) > 0 {
			ext[504] = 1
		}
		out = append(out, ext...)
	}
	return out
}

func writeGCP(dst *os.File, s *source) error {
	size := roundUp(max(s.size, 1), gcpAlign)
	m := sparseMap(s, size)
	bw := bufio.NewWriterSize(dst, 1<<20)
	// The fastest level: it is most of the time this format takes, and an
	// upload is rarely the slow step of a pipeline.
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	if _, err := zw.Write(gnuSparseHeaders("disk.raw", size, m)); err != nil {
		return goerrors.Wrap(err, 0)
	}
	buf := make([]byte, chunkSize)
	var stored int64
	for _, e := range m {
		for off := e[0]; off < e[0]+e[1]; off += chunkSize {
			if err := s.read(off/chunkSize, buf); err != nil {
				return err
			}
			n := min(chunkSize, e[0]+e[1]-off)
			if _, err := zw.Write(buf[:n]); err != nil {
				return goerrors.Wrap(err, 0)
			}
			stored += n
		}
	}
	// Pad the data to a block, then the two zero blocks that end an archive.
	pad := roundUp(stored, tarBlock) - stored + 2*tarBlock
	if _, err := zw.Write(make([]byte, pad)); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := zw.Close(); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := bw.Flush(); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}
