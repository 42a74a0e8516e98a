package fs

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A DigestCache remembers the leaf digests (UUIDScheme) of host files, so
// a build placing a file whose digests it knows lets the kernel copy it
// and hashes nothing: the runtime's tree, libc and the kernel, the same
// in build after build, are hashed once. A file is known by what changes
// whenever its bytes do: its device, inode, size, modification time and
// status-change time. The last cannot be set from user space (a write, a
// truncate, a touch or a rename over it all set it to the current time),
// so a file whose bytes changed is never taken for the one hashed.
//
// A file changed less than racyWindow before the build that hashed it is
// not remembered: a later change within the same tick of the clock that
// stamps times would keep its times (the racy-clean files of git's index).
//
// The cache is only a shortcut: one that is missing, damaged or from
// another scheme is empty, and saving it can fail without failing a
// build. Its file ends with the SHA-256 of the rest, so a torn or damaged
// file is never read as digests, which would give an image another UUID
// than the same inputs give on another machine.
type DigestCache struct {
	mu    sync.Mutex
	known map[fileKey][][sha256.Size]byte
	used  map[fileKey]bool // looked up or added by this process
	added bool
	since time.Time // files changed at or after it are not added
}

// fileKey is what identifies a host file's contents in a DigestCache.
type fileKey struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64 // nanoseconds since 1970
	valid        bool
}

// racyWindow is how long before a build a file must have last changed for
// its digests to be remembered: more than the coarsest tick of the
// clocks that stamp files' times.
const racyWindow = 2 * time.Second

// maxDigestEntries bounds the cache: past it, a save keeps only the files
// this process used.
const maxDigestEntries = 1 << 17

// digestMagic starts a cache file; the scheme and leaf size follow, so a
// file of another scheme reads as empty.
const digestMagic = "ops-digests 1\n"

// NewDigestCache is an empty cache for a build starting now.
func NewDigestCache(now time.Time) *DigestCache {
	return &DigestCache{known: map[fileKey][][sha256.Size]byte{}, used: map[fileKey]bool{}, since: now.Add(-racyWindow)}
}

// LoadDigestCache is the cache kept in b (what Bytes gave), for a build
// starting now; damaged or foreign contents give an empty cache and the
// reason.
func LoadDigestCache(b []byte, now time.Time) (*DigestCache, error) {
	c := NewDigestCache(now)
	known, err := parseDigests(b)
	if err != nil {
		return c, err
	}
	c.known = known
	return c, nil
}

// digestHeader is what a cache file starts with.
func digestHeader() []byte {
	b := append([]byte(digestMagic), UUIDScheme...)
	return binary.BigEndian.AppendUint64(append(b, ' '), leafSize)
}

// parseDigests reads a cache file: the header, then for each file its
// fileKey's five numbers, its leaf count and its leaves' digests, then the
// SHA-256 of everything before it.
func parseDigests(b []byte) (map[fileKey][][sha256.Size]byte, error) {
	if len(b) < sha256.Size {
		return nil, errors.New("digest cache: too short")
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, errors.New("digest cache: checksum mismatch")
	}
	h := digestHeader()
	if !bytes.HasPrefix(body, h) {
		return nil, errors.New("digest cache: another format or scheme")
	}
	body = body[len(h):]
	known := map[fileKey][][sha256.Size]byte{}
	for len(body) > 0 {
		if len(body) < 5*8+4 {
			return nil, errors.New("digest cache: truncated entry")
		}
		id := fileKey{
			Dev: binary.BigEndian.Uint64(body), Ino: binary.BigEndian.Uint64(body[8:]),
			Size: int64(binary.BigEndian.Uint64(body[16:])), Mtime: int64(binary.BigEndian.Uint64(body[24:])),
			Ctime: int64(binary.BigEndian.Uint64(body[32:])), valid: true,
		}
		n := int(binary.BigEndian.Uint32(body[40:]))
		body = body[44:]
		if id.Size <= 0 || n != leaves(id.Size) || len(body) < n*sha256.Size {
			return nil, errors.New("digest cache: an entry's leaf count does not match its size")
		}
		d := make([][sha256.Size]byte, n)
		for i := range d {
			copy(d[i][:], body[i*sha256.Size:])
		}
		body = body[n*sha256.Size:]
		known[id] = d
	}
	return known, nil
}

// Changed reports whether digests were added since the cache was loaded,
// so that it is worth saving.
func (c *DigestCache) Changed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.added
}

// Bytes is the cache as a file holds it (LoadDigestCache reads it back),
// in a fixed order. Past maxDigestEntries it keeps only the files this
// process used.
func (c *DigestCache) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := c.known
	if len(keep) > maxDigestEntries {
		keep = map[fileKey][][sha256.Size]byte{}
		for id := range c.used {
			if d, ok := c.known[id]; ok {
				keep[id] = d
			}
		}
	}
	ids := make([]fileKey, 0, len(keep))
	for id := range keep {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareFileKeys)
	b := digestHeader()
	for _, id := range ids {
		for _, v := range []uint64{id.Dev, id.Ino, uint64(id.Size), uint64(id.Mtime), uint64(id.Ctime)} {
			b = binary.BigEndian.AppendUint64(b, v)
		}
		d := keep[id]
		b = binary.BigEndian.AppendUint32(b, uint32(len(d)))
		for _, leaf := range d {
			b = append(b, leaf[:]...)
		}
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// compareFileKeys orders fileKeys by device, then inode, then the rest.
func compareFileKeys(a, b fileKey) int {
	return cmp.Or(cmp.Compare(a.Dev, b.Dev), cmp.Compare(a.Ino, b.Ino), cmp.Compare(a.Size, b.Size),
		cmp.Compare(a.Mtime, b.Mtime), cmp.Compare(a.Ctime, b.Ctime))
}

// overlayKey is the key of a file on an overlay filesystem (a
// container's root: Docker, Podman and containerd mount one for each
// container). The device is the mount's own, another for every
// container, while the inode number and times are those of the file in
// its layer, the same in every container of the image; so the key leaves
// the device out (0, which no mounted filesystem has), and the second
// container of an image finds what the first one hashed. Another file
// would need the same inode number, size and both times to the
// nanosecond on another overlay, and a status-change time cannot be set.
func overlayKey(k fileKey) fileKey {
	k.Dev = 0
	return k
}

// fileKeyOf is the fileKey of an open file's status.
func fileKeyOf(st *unix.Stat_t) fileKey {
	return fileKey{Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), valid: true}
}

// lookup returns the digests of the file id names, if known.
func (c *DigestCache) lookup(id fileKey) ([][sha256.Size]byte, bool) {
	if c == nil || !id.valid {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.known[id]
	if ok {
		c.used[id] = true
	}
	return d, ok
}

// add remembers a file's digests, unless it changed too recently for its
// times to be trusted.
func (c *DigestCache) add(id fileKey, d [][sha256.Size]byte) {
	if c == nil || !id.valid || id.Size <= 0 || len(d) != leaves(id.Size) {
		return
	}
	since := c.since.UnixNano()
	if id.Mtime >= since || id.Ctime >= since {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.known[id]; !ok {
		c.known[id] = append([][sha256.Size]byte(nil), d...)
		c.added = true
	}
	c.used[id] = true
}
