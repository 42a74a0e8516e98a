package fs

import (
	"crypto/sha256"
	"encoding/binary"
)

// The UUID of a TFS is derived from its contents, so equal inputs give
// equal bytes on any machine. UUIDScheme names how: it is written first
// into everything the UUID is derived from (the hash below, UUIDKey) and
// into the image key of every image holding a TFS, so a UUID or an image
// made under another scheme is never taken for one of this.
//
// Scheme tfs-uuid-2 is a tree of SHA-256 hashes, so the contents are
// hashed on every CPU as they are placed (each file is read once anyway).
// Each file's bytes are cut into leaves of leafSize from its start (the
// last one shorter); a leaf's digest is the SHA-256 of its bytes. The
// root is the SHA-256 of, in order, with every number a big-endian uint64:
//
//	"tfs-uuid-2\n", leafSize,
//	len(label), label,
//	the number of log extensions, then each one's length and bytes (not
//	    the zeros that pad it to ExtensionSecs sectors),
//	the number of files with contents, then for each in the order they
//	    lie in the filesystem: its first sector, its length and the
//	    digests of its leaves,
//
// and the UUID is the root's first 16 bytes marked as a name-based UUID.
// The log holds every name, link target, length and extent, so every
// byte of the filesystem is covered; where a leaf's bytes lie is fixed by
// its file's sector and length, whatever the number of CPUs.
// (tfs-uuid-1 was one SHA-256 over the label, the padded log and the
// contents in order: one stream, on one CPU.)
const UUIDScheme = "tfs-uuid-2"

// leafSize is the length of a leaf of the UUID's hash tree. It is part of
// the scheme: changing it changes every UUID.
const leafSize = 128 << 10

// leaves is the number of leaves of a file of size bytes.
func leaves(size int64) int { return int((size + leafSize - 1) / leafSize) }

// leafCount is the number of leaves of files' contents.
func leafCount(files []placed) int {
	n := 0
	for _, p := range files {
		n += leaves(p.e.Size)
	}
	return n
}

// rootUUID combines the metadata and the leaves' digests (in the files'
// order) into the UUID.
func (t *TFS) rootUUID(digests [][sha256.Size]byte) [16]byte {
	h := sha256.New()
	var b []byte
	num := func(v uint64) { b = binary.BigEndian.AppendUint64(b, v) }
	b = append(b, UUIDScheme+"\n"...)
	num(leafSize)
	num(uint64(len(t.label)))
	b = append(b, t.label...)
	num(uint64(len(t.log)))
	for _, ext := range t.log {
		num(uint64(len(ext)))
		h.Write(b)
		h.Write(ext)
		b = b[:0]
	}
	num(uint64(len(t.files)))
	for _, p := range t.files {
		num(p.offset)
		num(uint64(p.e.Size))
		for range leaves(p.e.Size) {
			b = append(b, digests[0][:]...)
			digests = digests[1:]
		}
		if len(b) >= 4096 {
			h.Write(b)
			b = b[:0]
		}
	}
	h.Write(b)
	var uuid [16]byte
	copy(uuid[:], h.Sum(nil))
	uuid[6] = uuid[6]&0x0f | 0x50 // name-based UUID (version 5 form)
	uuid[8] = uuid[8]&0x3f | 0x80 // RFC 4122 variant
	return uuid
}
