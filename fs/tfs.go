package fs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// TFS format constants.
const (
	SectorSize      = 512
	tfsVersion      = 5
	ExtensionSecs   = 1024  // one log extension: 512 KiB, as mkfs and ops use
	MaxExtentSecs   = 65536 // extents are capped at 32 MiB, as mkfs does
	recEndOfLog     = 0x01
	recAvailable    = 0x02
	recExtended     = 0x03
	recEndOfSegment = 0x04
	recLink         = 0x05
	maxLabel        = 31
)

const magic = "NVMTFS"

// TFS is a filesystem laid out and ready to write: its log (metadata) and
// where each file's data goes. offsets are in sectors from the start of the
// filesystem.
type TFS struct {
	log      [][]byte // the log extensions from sector 1 on, each without its zero padding
	logSecs  uint64
	label    string
	files    []placed // in the order they lie
	shared   int      // files[:shared] are not Last (TFSOptions.Last)
	used     uint64   // sectors used, from sector 0
	uuid     [16]byte
	known    bool // uuid was set (SetUUID), not to be hashed again
	digests  *DigestCache
	SizeSecs uint64 // total size in sectors (used plus free space)
}

type placed struct {
	e      *Entry
	offset uint64 // first sector
}

// UsedBytes is the number of bytes from the start of the filesystem to the
// end of the last sector written.
func (t *TFS) UsedBytes() int64 { return int64(t.used) * SectorSize }

// TFSOptions tunes a layout.
type TFSOptions struct {
	Label   string
	MinSize int64 // the filesystem is at least this many bytes
	// Slack is free space kept after the data, rounded up together with it
	// to a multiple of Slack (mkfs's rule with 512 KiB). Zero means no slack.
	Slack int64
	// Last, when set, names the files placed after all the others: an
	// image's own files, where the others are shared with other images
	// of the same contents (WriteShared, WriteOwn).
	Last func(*Entry) bool
}

// LayoutTFS places tree entries into a new filesystem whose root tuple also
// carries the keys in root (for the root filesystem, the manifest). root's
// children are replaced by the tree.
func LayoutTFS(tree *Tree, root *Tuple, opt TFSOptions) (*TFS, error) {
	if len(opt.Label) > maxLabel {
		return nil, fmt.Errorf("volume label %q is longer than %d bytes", opt.Label, maxLabel)
	}
	if root == nil {
		root = NewTuple()
	}
	// Start with one extension; grow if the metadata does not fit.
	for exts := uint64(1); ; exts++ {
		t := &TFS{label: opt.Label, logSecs: exts * ExtensionSecs}
		data := 1 + t.logSecs
		offsets := map[*Entry]uint64{}
		place := func(last bool) {
			for _, e := range tree.Entries() {
				if e.Kind != KindFile || (opt.Last != nil && opt.Last(e)) != last {
					continue
				}
				offsets[e] = data
				secs := uint64(e.Size+SectorSize-1) / SectorSize
				if secs > 0 {
					t.files = append(t.files, placed{e: e, offset: data})
				}
				data += secs
			}
		}
		place(false)
		t.shared = len(t.files)
		place(true)
		nodes, err := buildNodes(tree, func(e *Entry) (*Tuple, error) {
			file := newTupleSize(2)
			secs := uint64(e.Size+SectorSize-1) / SectorSize
			extents := newTupleSize(int((secs + MaxExtentSecs - 1) / MaxExtentSecs))
			for off := uint64(0); off < secs; off += MaxExtentSecs {
				n := min(secs-off, MaxExtentSecs)
				extents.Set(strconv.FormatUint(off, 10), newTupleSize(3).
					Set("offset", Int(offsets[e]+off)).
					Set("length", Int(n)).
					Set("allocated", Int(n)))
			}
			file.Set("extents", extents)
			file.Set("filelength", Int(e.Size))
			return file, nil
		})
		if err != nil {
			return nil, err
		}
		for _, k := range nodes.Keys() {
			v, _ := nodes.Get(k)
			root.Set(k, v)
		}
		enc, err := NewEncoder().Append(nil, root)
		if err != nil {
			return nil, fmt.Errorf("encoding filesystem metadata: %w", err)
		}
		logb, ok := layoutLog(enc, exts)
		if !ok {
			continue
		}
		t.log = logb
		t.used = data
		size := int64(data) * SectorSize
		if opt.Slack > 0 {
			size = (size + opt.Slack + opt.Slack - 1) / opt.Slack * opt.Slack
		}
		if size < opt.MinSize {
			size = roundSector(opt.MinSize)
		}
		t.SizeSecs = uint64(size / SectorSize)
		return t, nil
	}
}

// buildNodes turns the tree into the root's children tuple (returned as a
// tuple holding "children"), asking file for each regular file's node.
func buildNodes(tree *Tree, file func(*Entry) (*Tuple, error)) (*Tuple, error) {
	dirs := map[string]*Tuple{}
	rootChildren := NewTuple()
	dirs["/"] = rootChildren
	for _, e := range tree.Entries() {
		if e.Path == "/" {
			continue
		}
		parent := dirs[path.Dir(e.Path)]
		if parent == nil {
			return nil, fmt.Errorf("%s: parent is not a directory", e.Path)
		}
		name := path.Base(e.Path)
		switch e.Kind {
		case KindDir:
			c := NewTuple()
			dirs[e.Path] = c
			parent.Set(name, NewTuple().Set("children", c))
		case KindSymlink:
			parent.Set(name, NewTuple().Set("linktarget", String(e.Target)))
		case KindFile:
			n, err := file(e)
			if err != nil {
				return nil, err
			}
			parent.Set(name, n)
		}
	}
	return NewTuple().Set("children", rootChildren), nil
}

// layoutLog splits the encoded root tuple over exts extensions of
// ExtensionSecs sectors each (starting at sector 1), linking them in order.
// Each extension is returned without the zeros that pad it to its size:
// the image reads as zeros there, and they need not be written.
// It reports false when the metadata does not fit.
func layoutLog(enc []byte, exts uint64) ([][]byte, bool) {
	ext := ExtensionSecs * SectorSize
	var log [][]byte
	rest := enc
	for i := uint64(0); i < exts; i++ {
		var out []byte
		out = append(out, magic...)
		out = appendVarint(out, tfsVersion)
		out = appendVarint(out, ExtensionSecs)
		last := i == exts-1
		// Room: keep 16 bytes for a link record and the end byte.
		room := ext - len(out) - 16 - 2*10
		if room <= 0 {
			return nil, false
		}
		seg := min(len(rest), room)
		if i == 0 {
			out = append(out, recAvailable)
			out = appendVarint(out, uint64(len(enc)))
		} else if seg > 0 {
			out = append(out, recExtended)
		}
		if i == 0 || seg > 0 {
			out = appendVarint(out, uint64(seg))
			out = append(out, rest[:seg]...)
			rest = rest[seg:]
		}
		if last {
			if len(rest) > 0 {
				return nil, false
			}
			out = append(out, recEndOfLog)
		} else {
			out = append(out, recLink)
			out = appendVarint(out, 1+(i+1)*ExtensionSecs)
			out = appendVarint(out, ExtensionSecs)
		}
		log = append(log, out)
	}
	return log, true
}

// header returns sector 0: the initial extension with UUID and label,
// linking to the first real extension.
func (t *TFS) header() []byte {
	b := make([]byte, 0, SectorSize)
	b = append(b, magic...)
	b = appendVarint(b, tfsVersion)
	b = appendVarint(b, 1)
	b = append(b, t.uuid[:]...)
	b = append(b, t.label...)
	b = append(b, 0)
	b = append(b, recLink)
	b = appendVarint(b, 1)
	b = appendVarint(b, ExtensionSecs)
	b = append(b, recEndOfLog)
	return append(b, make([]byte, SectorSize-len(b))...)
}

// UUIDKey writes to w everything the UUID is derived from, with stamp
// standing in for each host file's contents (something that changes
// whenever they do) and a hash for in-memory ones. Equal keys give equal
// UUIDs, so a caller that trusts its stamps can keep a UUID (SetUUID)
// rather than read and hash the same contents again.
func (t *TFS) UUIDKey(w io.Writer, stamp func(*Entry) ([]byte, error)) (err error) {
	defer wrapIO(&err)
	fmt.Fprintf(w, "%s %q %d\n", UUIDScheme, t.label, len(t.log))
	for _, ext := range t.log {
		fmt.Fprintf(w, "log %d\n", len(ext))
		w.Write(ext)
	}
	for _, p := range t.files {
		fmt.Fprintf(w, "\nfile %d %d %q ", p.offset, p.e.Size, p.e.Path)
		if p.e.Data != nil {
			sum := sha256.Sum256(p.e.Data)
			fmt.Fprintf(w, "data %x", sum)
			continue
		}
		b, err := stamp(p.e)
		if err != nil {
			return err
		}
		w.Write(b)
	}
	return nil
}

// UUID is the filesystem's UUID, once it was written or set.
func (t *TFS) UUID() (uuid [16]byte, ok bool) { return t.uuid, t.known }

// UseDigests has the write take the digests of the host files cache
// knows from it, copying them without hashing, and add those it hashes.
func (t *TFS) UseDigests(cache *DigestCache) { t.digests = cache }

// SetUUID gives the filesystem the UUID an earlier write of the same key
// (UUIDKey) derived; writing it then places the contents without hashing
// them.
func (t *TFS) SetUUID(uuid [16]byte) { t.uuid, t.known = uuid, true }

// WriteAt writes the filesystem into f at byte offset base. The region
// must already read as zeros (a new or truncated file): free space and the
// log's padding are not written. File contents are hashed as they are
// placed, and the UUID is derived from the metadata and those hashes
// (UUIDScheme), so equal contents give equal bytes.
func (t *TFS) WriteAt(f *os.File, base int64) (err error) {
	defer wrapIO(&err)
	return withFD(f, func(fd int) error { return t.write(fd, base) })
}

// write places the files' contents, hashing them as they go (UUIDScheme)
// unless the UUID is known, then writes the metadata, the header with
// the UUID and the log.
func (t *TFS) write(fd int, base int64) error {
	if t.known {
		if err := tfsContents(fd, base, t.files, nil, nil); err != nil {
			return err
		}
	} else {
		digests := make([][sha256.Size]byte, leafCount(t.files))
		if err := tfsContents(fd, base, t.files, digests, t.digests); err != nil {
			return err
		}
		t.uuid, t.known = t.rootUUID(digests), true
	}
	return t.writeLog(fd, base)
}

// writeLog writes the header (sector 0) and the log extensions.
func (t *TFS) writeLog(fd int, base int64) error {
	// The header (sector 0) and the first extension (from sector 1) are
	// adjacent.
	if err := pwritevAll(fd, [][]byte{t.header(), t.log[0]}, base); err != nil {
		return err
	}
	for i, ext := range t.log[1:] {
		if err := pwriteAll(fd, ext, base+int64(1+(i+1)*ExtensionSecs)*SectorSize); err != nil {
			return err
		}
	}
	return nil
}

// A filesystem laid out with TFSOptions.Last is written in two parts that
// never share a sector: the shared part (the contents of the files that
// are not Last, which lie first) and its own (the header, the log and the
// Last files). The shared part is the same in every filesystem whose
// shared files are the same and lie in the same places, so it can be
// written once and kept (a disk image other images are overlays of).
// Together they are the filesystem write writes, byte for byte.

// sharedEnd is the byte offset, from the filesystem's start, where the
// shared part ends.
func (t *TFS) sharedEnd() int64 {
	if t.shared == 0 {
		return int64(1+t.logSecs) * SectorSize
	}
	last := t.files[t.shared-1]
	return roundSector(int64(last.offset)*SectorSize + last.e.Size)
}

// SharedKey writes to w what the shared part is made of: where it lies
// and each shared file's place and identity (EntriesKey). Equal keys
// give equal shared parts on this machine; settled is EntriesKey's.
func (t *TFS) SharedKey(w io.Writer, now time.Time) (settled bool, err error) {
	defer wrapIO(&err)
	fmt.Fprintf(w, "%s shared %q %d %d %d\n", UUIDScheme, t.label, t.logSecs, t.sharedEnd(), t.shared)
	k := newIdentities(now)
	for _, p := range t.files[:t.shared] {
		fmt.Fprintf(w, "at %d ", p.offset)
		if err := k.write(w, p.e); err != nil {
			return false, err
		}
	}
	return k.settled, nil
}

// EntriesKey writes to w each entry's path, kind and identity: a host
// file's device, inode, size and modification and status-change times (a
// DigestCache's key, without the device on an overlay, where every
// container of an image sees the same inode and times on a device of its
// own), an in-memory one's SHA-256, a link's target; an empty file is
// only empty. Equal keys give equal contents on this machine. settled is
// false when a host file changed less than racyWindow before now, when
// its times may not tell a later change from it: such a key is not to be
// kept.
func EntriesKey(w io.Writer, ents []*Entry, now time.Time) (settled bool, err error) {
	defer wrapIO(&err)
	k := newIdentities(now)
	for _, e := range ents {
		if err := k.write(w, e); err != nil {
			return false, err
		}
	}
	return k.settled, nil
}

// identities writes entries' identities (EntriesKey).
type identities struct {
	since    int64 // files changed at or after it are not settled
	settled  bool
	overlays overlayDevs
}

func newIdentities(now time.Time) *identities {
	return &identities{since: now.Add(-racyWindow).UnixNano(), settled: true}
}

func (k *identities) write(w io.Writer, e *Entry) error {
	fmt.Fprintf(w, "%q %d %o %d ", e.Path, e.Kind, e.Mode, e.Size)
	switch {
	case e.Kind == KindSymlink:
		fmt.Fprintf(w, "link %q\n", e.Target)
		return nil
	case e.Kind != KindFile:
		fmt.Fprintln(w)
		return nil
	case e.Data != nil:
		fmt.Fprintf(w, "data %x\n", sha256.Sum256(e.Data))
		return nil
	case e.Size == 0:
		// Nothing to tell apart: an engine's empty files (Docker's
		// /.dockerenv), new in each container, do not make its key new.
		fmt.Fprintln(w, "empty")
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(e.Source, &st); err != nil {
		return &os.PathError{Op: "stat", Path: e.Source, Err: err}
	}
	id := fileKeyOf(&st)
	if id.Size != e.Size {
		return fmt.Errorf("%s changed size while the image was planned (%d bytes, expected %d)", e.Source, id.Size, e.Size)
	}
	if k.overlays.on(id.Dev, func(fs *unix.Statfs_t) error { return unix.Statfs(e.Source, fs) }) {
		id = overlayKey(id)
	}
	if id.Mtime >= k.since || id.Ctime >= k.since {
		k.settled = false
	}
	fmt.Fprintf(w, "%d %d %d %d\n", id.Dev, id.Ino, id.Mtime, id.Ctime)
	return nil
}

// writeShared writes the shared part at base and returns its leaf
// digests, which writeOwn needs for the UUID.
func (t *TFS) writeShared(fd int, base int64) ([][sha256.Size]byte, error) {
	shared := t.files[:t.shared]
	digests := make([][sha256.Size]byte, leafCount(shared))
	if err := tfsContents(fd, base, shared, digests, t.digests); err != nil {
		return nil, err
	}
	return digests, nil
}

// writeOwn writes the filesystem's own part at base; shared are the
// shared part's digests (writeShared, for the same shared files).
func (t *TFS) writeOwn(fd int, base int64, shared [][sha256.Size]byte) error {
	if len(shared) != leafCount(t.files[:t.shared]) {
		return fmt.Errorf("tfs: %d digests for a shared part of %d leaves", len(shared), leafCount(t.files[:t.shared]))
	}
	own := t.files[t.shared:]
	digests := make([][sha256.Size]byte, len(shared)+leafCount(own))
	copy(digests, shared)
	if err := tfsContents(fd, base, own, digests[len(shared):], t.digests); err != nil {
		return err
	}
	t.uuid, t.known = t.rootUUID(digests), true
	return t.writeLog(fd, base)
}

// Reader reads a TFS filesystem: its root tuple and file contents.
type Reader struct {
	r       io.ReaderAt
	size    int64
	logSecs uint64 // sectors of log read
	Root    *Tuple
	UUID    [16]byte
	Label   string
}

// maxLogSecs bounds how much log a reader will follow.
const maxLogSecs = 1 << 20

// OpenTFS reads the log of the filesystem held in r (size bytes).
func OpenTFS(r io.ReaderAt, size int64) (_ *Reader, err error) {
	defer wrapIO(&err)
	rd := &Reader{r: r, size: size}
	d := NewDecoder()
	var pending []byte
	var want uint64
	start, secs := uint64(0), uint64(1)
	read := uint64(0)
	for hop := 0; ; hop++ {
		if hop > 4096 || read > maxLogSecs {
			return nil, errors.New("tfs: log too long or looping")
		}
		if int64(start+secs)*SectorSize > size {
			return nil, fmt.Errorf("tfs: log extension at sector %d (%d sectors) lies beyond the filesystem", start, secs)
		}
		read += secs
		b := make([]byte, secs*SectorSize)
		if _, err := r.ReadAt(b, int64(start)*SectorSize); err != nil {
			return nil, fmt.Errorf("tfs: reading sector %d: %w", start, err)
		}
		if len(b) < len(magic) || string(b[:len(magic)]) != magic {
			return nil, fmt.Errorf("tfs: no NVMTFS header at sector %d", start)
		}
		p := len(magic)
		ver, k, err := readVarint(b[p:])
		if err != nil {
			return nil, fmt.Errorf("tfs: header at sector %d: %w", start, err)
		}
		p += k
		if ver != tfsVersion {
			return nil, fmt.Errorf("tfs: version %d is not supported (want %d)", ver, tfsVersion)
		}
		if _, k, err = readVarint(b[p:]); err != nil {
			return nil, fmt.Errorf("tfs: header at sector %d: %w", start, err)
		}
		p += k
		if start == 0 {
			if len(b)-p < 17 {
				return nil, errors.New("tfs: short header")
			}
			copy(rd.UUID[:], b[p:p+16])
			p += 16
			end := p
			for end < len(b) && b[end] != 0 && end-p <= maxLabel {
				end++
			}
			if end >= len(b) || b[end] != 0 {
				return nil, errors.New("tfs: invalid label")
			}
			rd.Label = string(b[p:end])
			p = end + 1
		}
		next := false
	records:
		for p < len(b) {
			rec := b[p]
			p++
			switch rec {
			case recEndOfLog:
				break records
			case recEndOfSegment:
			case recLink:
				s, k, err := readVarint(b[p:])
				if err != nil {
					return nil, fmt.Errorf("tfs: link: %w", err)
				}
				p += k
				n, k, err := readVarint(b[p:])
				if err != nil {
					return nil, fmt.Errorf("tfs: link: %w", err)
				}
				if n == 0 || n > maxLogSecs {
					return nil, fmt.Errorf("tfs: bad extension size %d", n)
				}
				start, secs, next = s, n, true
				break records
			case recAvailable, recExtended:
				if rec == recAvailable {
					if want > 0 {
						return nil, errors.New("tfs: new tuple while one is incomplete")
					}
					tot, k, err := readVarint(b[p:])
					if err != nil {
						return nil, err
					}
					p += k
					if tot > 32<<20 {
						return nil, fmt.Errorf("tfs: tuple of %d bytes is too large", tot)
					}
					want = tot
					pending = pending[:0]
				} else if want == 0 {
					return nil, errors.New("tfs: extended data without a tuple")
				}
				seg, k, err := readVarint(b[p:])
				if err != nil {
					return nil, err
				}
				p += k
				if seg > uint64(len(b)-p) || uint64(len(pending))+seg > want {
					return nil, errors.New("tfs: tuple segment overruns its extension or tuple")
				}
				pending = append(pending, b[p:p+int(seg)]...)
				p += int(seg)
				if uint64(len(pending)) == want {
					v, n, err := d.Decode(pending)
					if err != nil {
						return nil, fmt.Errorf("tfs: %w", err)
					}
					if n != len(pending) {
						return nil, errors.New("tfs: trailing bytes after tuple")
					}
					if t, ok := v.(*Tuple); ok && rd.Root == nil {
						rd.Root = t
					}
					want = 0
				}
			default:
				return nil, fmt.Errorf("tfs: unknown record 0x%02x at sector %d", rec, start)
			}
		}
		if !next {
			break
		}
	}
	if want > 0 {
		return nil, errors.New("tfs: log ends inside a tuple")
	}
	if rd.Root == nil {
		return nil, errors.New("tfs: log holds no root tuple")
	}
	rd.logSecs = read
	return rd, nil
}

// Lookup walks path from the root, following no links.
func (rd *Reader) Lookup(p string) (_ *Tuple, err error) {
	defer wrapIO(&err)
	n := rd.Root
	for _, part := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if part == "" {
			continue
		}
		c := n.Tuple("children")
		if c == nil {
			return nil, fmt.Errorf("%s: not a directory", p)
		}
		if n = c.Tuple(part); n == nil {
			return nil, fmt.Errorf("%s: no such file", p)
		}
	}
	return n, nil
}

// ReadFile returns the contents of the regular file node n.
func (rd *Reader) ReadFile(n *Tuple) (_ []byte, err error) {
	defer wrapIO(&err)
	length, ok := n.uint("filelength")
	if !ok {
		return nil, errors.New("not a regular file")
	}
	if int64(length) > rd.size {
		return nil, fmt.Errorf("file length %d exceeds the filesystem", length)
	}
	out := make([]byte, length)
	ext := n.Tuple("extents")
	if ext == nil {
		return nil, errors.New("file has no extents")
	}
	for _, k := range ext.Keys() {
		fileSec, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("extent key %q is not a number", k)
		}
		e := ext.Tuple(k)
		if e == nil {
			return nil, fmt.Errorf("extent %s is not a tuple", k)
		}
		off, ok1 := e.uint("offset")
		l, ok2 := e.uint("length")
		_, ok3 := e.uint("allocated")
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("extent %s lacks offset, length or allocated", k)
		}
		if fileSec > length/SectorSize+1 || l > length/SectorSize+1 {
			return nil, fmt.Errorf("extent %s lies beyond the file", k)
		}
		if _, u := e.Get("uninited"); u {
			continue
		}
		from := fileSec * SectorSize
		if from >= length {
			continue
		}
		cnt := min(l*SectorSize, length-from)
		if int64(off*SectorSize+cnt) > rd.size {
			return nil, fmt.Errorf("extent %s lies beyond the filesystem", k)
		}
		if _, err := rd.r.ReadAt(out[from:from+cnt], int64(off)*SectorSize); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Usage is how much of the filesystem is in use: the log and every
// file's allocated extents, in bytes, beside its size.
func (rd *Reader) Usage() (used, size int64) {
	secs := rd.logSecs
	seen := map[*Tuple]bool{}
	var walk func(t *Tuple)
	walk = func(t *Tuple) {
		if t == nil || seen[t] {
			return
		}
		seen[t] = true
		if ext := t.Tuple("extents"); ext != nil {
			for _, k := range ext.Keys() {
				if e := ext.Tuple(k); e != nil {
					if a, ok := e.uint("allocated"); ok {
						secs += a
					}
				}
			}
		}
		if ch := t.Tuple("children"); ch != nil {
			for _, k := range ch.Keys() {
				walk(ch.Tuple(k))
			}
		}
	}
	walk(rd.Root)
	return int64(secs) * SectorSize, rd.size
}

// DirEntry is one entry of a TFS folder.
type DirEntry struct {
	Name   string
	Kind   Kind
	Size   uint64 // file length (KindFile); 0 when the node has none
	Target string // link target (KindSymlink), as Format prints it
}

// ReadDir lists the folder at p, sorted by name. A node with children
// is a folder, one with a linktarget a link, any other a file; entries
// that are not tuples are skipped.
func (rd *Reader) ReadDir(p string) (_ []DirEntry, err error) {
	defer wrapIO(&err)
	n, err := rd.Lookup(p)
	if err != nil {
		return nil, err
	}
	ch := n.Tuple("children")
	if ch == nil {
		return nil, fmt.Errorf("%s is not a folder", p)
	}
	var out []DirEntry
	for _, k := range ch.Keys() {
		c := ch.Tuple(k)
		if c == nil {
			continue
		}
		e := DirEntry{Name: k, Kind: KindFile}
		if c.Tuple("children") != nil {
			e.Kind = KindDir
		} else if t, ok := c.Get("linktarget"); ok {
			e.Kind, e.Target = KindSymlink, Format(t)
		} else {
			e.Size, _ = c.uint("filelength")
		}
		out = append(out, e)
	}
	return out, nil
}
