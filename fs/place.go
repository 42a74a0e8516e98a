package fs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Placing file contents into an image. The kernel copies each large
// source file into its place with copy_file_range, so the bytes do not
// pass through ops's memory on their way; filesystems that refuse get a
// pread/pwrite loop. Small files are read and their bytes written in
// batches (the initramfs's pieces, a TFS's batches in tfsContents below).

// copyBuf is the size of the buffers used for hashing, for batches of
// small files and for the fallback copy: small enough to stay in the CPU's
// cache, and reused, so no buffer grows with a file's size (and every new
// page costs a fault, ~4 µs on these nested machines).
const copyBuf = 128 << 10

// source is one open source file, shared by whoever still needs it (the
// one hashing it and the copier); the last to finish closes it.
type source struct {
	fd    int
	path  string // host path, for errors
	size  int64
	holes bool    // the file has holes: copy only its data
	key   fileKey // what identifies its contents (DigestCache)
	refs  atomic.Int32
}

func (s *source) release() {
	if s.refs.Add(-1) == 0 {
		unix.Close(s.fd)
	}
}

// openSource opens a file that should hold size bytes, refusing one whose
// size changed since it was planned. refs says how many will release it.
func openSource(path string, size int64, refs int32) (*source, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Size != size {
		unix.Close(fd)
		return nil, fmt.Errorf("%s changed size while the image was written (%d bytes, expected %d)", path, st.Size, size)
	}
	s := &source{fd: fd, path: path, size: size, holes: st.Blocks*512 < st.Size, key: fileKeyOf(&st)}
	s.refs.Store(refs)
	return s, nil
}

// copyJob places a whole source at off in the image.
type copyJob struct {
	src *source
	off int64
}

// copier places sources into the image file dst and remembers the first
// error, for callers placing files side by side.
type copier struct {
	dst    int
	noCFR  atomic.Bool // copy_file_range refused once: use the fallback
	failed atomic.Bool
	mu     sync.Mutex
	err    error
}

func newCopier(dst int) *copier { return &copier{dst: dst} }

func (c *copier) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.failed.Store(true)
}

// wait returns the first error.
func (c *copier) wait() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// place copies one source, its data regions only when it has holes, so
// they stay holes in the image (which reads as zeros where not written).
func (c *copier) place(j copyJob, buf *[]byte) error {
	s := j.src
	if !s.holes {
		return c.copyRange(s, 0, s.size, j.off, buf)
	}
	for pos := int64(0); pos < s.size; {
		data, err := unix.Seek(s.fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole remains
		}
		if err != nil {
			return c.copyRange(s, pos, s.size-pos, j.off+pos, buf)
		}
		hole, err := unix.Seek(s.fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = s.size
		}
		hole = min(hole, s.size)
		if err := c.copyRange(s, data, hole-data, j.off+data, buf); err != nil {
			return err
		}
		pos = hole
	}
	return nil
}

// copyRange copies n bytes of s from from to the image at to.
func (c *copier) copyRange(s *source, from, n, to int64, buf *[]byte) error {
	for n > 0 && !c.noCFR.Load() {
		k, err := unix.CopyFileRange(s.fd, &from, c.dst, &to, int(min(n, 1<<30)), 0)
		if err != nil {
			if refused(err) {
				c.noCFR.Store(true)
				break
			}
			return fmt.Errorf("copying %s into the image: %w", s.path, err)
		}
		if k == 0 {
			return fmt.Errorf("%s changed size while the image was written (ends %d bytes early)", s.path, n)
		}
		n -= int64(k)
	}
	if n == 0 {
		return nil
	}
	if *buf == nil {
		*buf = make([]byte, copyBuf)
	}
	for n > 0 {
		k := min(n, int64(len(*buf)))
		if err := readFull(s, (*buf)[:k], from); err != nil {
			return err
		}
		if err := pwriteAll(c.dst, (*buf)[:k], to); err != nil {
			return err
		}
		from, to, n = from+k, to+k, n-k
	}
	return nil
}

// refused reports whether copy_file_range cannot copy between these
// files at all (an old kernel, another filesystem, a file system that
// does not support it), as opposed to failing at it.
func refused(err error) bool {
	switch err {
	case unix.ENOSYS, unix.EXDEV, unix.EINVAL, unix.EOPNOTSUPP, unix.EPERM, unix.EIO:
		return true
	}
	return false
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		k, err := unix.Pwrite(fd, b, off)
		if err != nil {
			return fmt.Errorf("writing the image: %w", err)
		}
		b, off = b[k:], off+int64(k)
	}
	return nil
}

// pwritevAll writes the buffers one after another from off, in one call
// when the kernel takes them all.
func pwritevAll(fd int, bufs [][]byte, off int64) error {
	n, err := unix.Pwritev(fd, bufs, off)
	if err != nil {
		return fmt.Errorf("writing the image: %w", err)
	}
	for _, b := range bufs {
		k := min(n, len(b))
		if err := pwriteAll(fd, b[k:], off+int64(k)); err != nil {
			return err
		}
		n -= k
		off += int64(len(b))
	}
	return nil
}

// A TFS's contents, placed by a worker per CPU. A reader opens every file
// in order and gathers the small ones into buffers laid out as they lie in
// the image (each from its sector, zeros to the next): below batchMax a
// file's own copy_file_range costs more than its bytes (~22 µs a file
// here, against ~5 µs for its share of one pwrite), and they are read
// anyway, for the hash. Large files it cuts into their leaves
// (UUIDScheme). Each worker takes the next batch or leaf, hashes each leaf
// in it and writes it: a leaf is read into the worker's buffer, hashed and
// written from there (no slower than having the kernel copy it after the
// hash read it, faster for a tree of many files), and nothing passes
// between goroutines but the work. Where the UUID is known nothing is
// hashed, and the kernel copies each large file whole.
const batchMax = 64 << 10 // at most leafSize: a small file is one leaf

// chunk is one piece of work: a batch of small files or a piece of an
// in-memory file (buf), a leaf of a large file (src, from, n), a large
// file to copy whole (src, whole), or what stopped the reader (err).
type chunk struct {
	buf     []byte  // bytes as they lie in the image from off
	spans   []span  // each file in buf, for its digest
	pool    *pool   // where buf goes once written, if anywhere
	src     *source // a large file, opened
	from, n int64   // the leaf's bytes of src
	leaf    int     // the leaf's digest's index
	write   bool    // write the leaf (its file has no holes)
	whole   bool    // copy src whole, keeping its holes holes
	off     int64   // where buf, the leaf or src goes in the image
	err     error
}

// span is one file's bytes in a chunk's buf: they end at end, and their
// digest is leaf number leaf (-1: known already).
type span struct{ end, leaf int }

// done gives back what the chunk holds.
func (c chunk) done() {
	if c.src != nil {
		c.src.release()
	}
	if c.pool != nil {
		c.pool.free <- c.buf
	}
}

// pool holds the buffers one goroutine fills: at most cap(free), made on
// first need, at least size bytes.
type pool struct {
	free chan []byte
	made int
	size int
}

func newPool(n, size int) *pool { return &pool{free: make(chan []byte, n), size: size} }

// get returns an empty buffer of at least n bytes, waiting for one to be
// written when all are in use, unless quit closes first.
func (p *pool) get(n int, quit <-chan struct{}) ([]byte, error) {
	var b []byte
	select {
	case b = <-p.free:
	default:
		if p.made < cap(p.free) {
			p.made++
			break
		}
		select {
		case b = <-p.free:
		case <-quit:
			return nil, errQuit
		}
	}
	if b == nil || cap(b) < n {
		b = make([]byte, 0, max(n, p.size))
	}
	return b[:0], nil
}

var errQuit = errors.New("stopped")

// tfsContents writes the contents of files (placed from byte base of dst)
// into place and, unless digests is nil, sets the digest of each of their
// leaves, in order: from cache where it knows a file (which is then
// copied, not hashed), and it remembers those it learns.
func tfsContents(dst int, base int64, files []placed, digests [][sha256.Size]byte, cache *DigestCache) error {
	workers := runtime.GOMAXPROCS(0)
	chunks := make(chan chunk, 2*workers)
	quit := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(quit) }) }
	r := newChunkReader(files, digests, cache, workers+1, chunks, quit)
	go r.run(files, base)
	c := newCopier(dst)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte // a leaf's bytes, or the fallback copy's
			for ch := range chunks {
				if !c.failed.Load() {
					if err := c.placeChunk(ch, digests, &buf); err != nil {
						c.fail(err)
						stop() // the reader stops, and closes chunks
					}
				}
				ch.done()
			}
		}()
	}
	wg.Wait()
	stop()
	if err := c.wait(); err != nil {
		return err
	}
	// The reader is done too: it closed chunks before the workers ended.
	for _, l := range r.learned {
		cache.add(l.key, digests[l.leaf:l.leaf+leaves(l.key.Size)])
	}
	return nil
}

// placeChunk hashes and writes one chunk.
func (c *copier) placeChunk(ch chunk, digests [][sha256.Size]byte, buf *[]byte) error {
	switch {
	case ch.err != nil:
		return ch.err
	case ch.whole:
		return c.place(copyJob{src: ch.src, off: ch.off}, buf)
	case ch.src != nil:
		if int64(len(*buf)) < ch.n {
			*buf = make([]byte, leafSize)
		}
		b := (*buf)[:ch.n]
		if err := readFull(ch.src, b, ch.from); err != nil {
			return err
		}
		digests[ch.leaf] = sha256.Sum256(b)
		if !ch.write {
			return nil
		}
		return pwriteAll(c.dst, b, ch.off)
	}
	if digests != nil {
		start := 0
		for _, s := range ch.spans {
			if s.leaf >= 0 {
				digests[s.leaf] = sha256.Sum256(ch.buf[start:s.end])
			}
			start = int(roundSector(int64(s.end)))
		}
	}
	return pwriteAll(c.dst, ch.buf, ch.off)
}

// chunkReader opens files in order, gathering the small ones into
// batches and cutting large ones into leaves when they are to be hashed,
// and sends them on out.
type chunkReader struct {
	out      chan<- chunk
	quit     <-chan struct{}
	digests  [][sha256.Size]byte // nil: nothing is hashed
	cache    *DigestCache
	batch    *pool
	cur      chunk       // the batch being filled
	leaf     int         // the next file's first leaf
	learned  []learned   // files hashed, for the cache
	overlays overlayDevs // devices seen: overlay or not
}

// onOverlay reports whether s is on an overlay filesystem.
func (r *chunkReader) onOverlay(s *source) bool {
	return r.overlays.on(s.key.Dev, func(fs *unix.Statfs_t) error { return unix.Fstatfs(s.fd, fs) })
}

// overlayDevs remembers which devices are overlay filesystems.
type overlayDevs map[uint64]bool

// on reports whether device dev is an overlay filesystem, asking statfs
// (about a file on it) once per device: an overlay's is an anonymous
// one, major 0.
func (o *overlayDevs) on(dev uint64, statfs func(*unix.Statfs_t) error) bool {
	if unix.Major(dev) != 0 {
		return false
	}
	overlay, ok := (*o)[dev]
	if !ok {
		var fs unix.Statfs_t
		overlay = statfs(&fs) == nil && fs.Type == unix.OVERLAYFS_SUPER_MAGIC
		if *o == nil {
			*o = overlayDevs{}
		}
		(*o)[dev] = overlay
	}
	return overlay
}

// learned is a file whose digests the workers compute, from leaf on.
type learned struct {
	key  fileKey
	leaf int
}

// newChunkReader keeps at most bufs batch buffers at once.
func newChunkReader(files []placed, digests [][sha256.Size]byte, cache *DigestCache, bufs int, out chan<- chunk, quit <-chan struct{}) *chunkReader {
	var small int64
	for _, p := range files {
		if p.e.Size < batchMax {
			small += roundSector(p.e.Size)
		}
	}
	// Batches of copyBuf, or less when that is all the small files need.
	return &chunkReader{out: out, quit: quit, digests: digests, cache: cache, batch: newPool(bufs, int(min(small, copyBuf)))}
}

// run reads files (placed from byte base) and sends their chunks on,
// closing out at the end; it stops early when quit closes.
func (r *chunkReader) run(files []placed, base int64) {
	defer close(r.out)
	for _, p := range files {
		if err := r.file(p.e, base+int64(p.offset)*SectorSize); err != nil {
			if !errors.Is(err, errQuit) && r.flush() == nil {
				r.send(chunk{err: err})
			}
			return
		}
		r.leaf += leaves(p.e.Size)
	}
	r.flush()
}

func (r *chunkReader) send(c chunk) error {
	select {
	case r.out <- c:
		return nil
	case <-r.quit:
		return errQuit
	}
}

// flush sends the batch being filled.
func (r *chunkReader) flush() error {
	c := r.cur
	r.cur = chunk{}
	if c.buf == nil {
		return nil
	}
	return r.send(c)
}

// file gathers one file into the batch when small, else sends it on in
// leaves, or whole.
func (r *chunkReader) file(e *Entry, off int64) error {
	if e.Data != nil {
		if e.Size < batchMax {
			d, err := r.slot(off, len(e.Data))
			if err != nil {
				return err
			}
			copy(d, e.Data)
			return nil
		}
		if err := r.flush(); err != nil {
			return err
		}
		for i, from := 0, 0; from < len(e.Data); i, from = i+1, from+leafSize {
			b := e.Data[from:min(from+leafSize, len(e.Data))]
			if err := r.send(chunk{buf: b, spans: []span{{len(b), r.leaf + i}}, off: off + int64(from)}); err != nil {
				return err
			}
		}
		return nil
	}
	s, err := openSource(e.Source, e.Size, 1)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	defer s.release()
	hash := r.digests != nil
	if hash && r.cache != nil && r.onOverlay(s) {
		s.key = overlayKey(s.key)
	}
	if d, ok := r.cache.lookup(s.key); ok && hash {
		copy(r.digests[r.leaf:], d)
		hash = false
	} else if hash {
		r.learned = append(r.learned, learned{s.key, r.leaf})
	}
	if e.Size >= batchMax || s.holes { // the kernel's copy keeps holes holes
		if err := r.flush(); err != nil {
			return err
		}
		return r.large(s, off, hash)
	}
	d, err := r.slot(off, int(e.Size))
	if err != nil {
		return err
	}
	if !hash {
		r.cur.spans[len(r.cur.spans)-1].leaf = -1
	}
	return readFull(s, d, 0)
}

// large sends a large file on: whole to be copied by the kernel when it
// has holes or is not to be hashed, and in leaves to be hashed (and
// written from the worker's buffer when it has no holes).
func (r *chunkReader) large(s *source, off int64, hash bool) error {
	send := func(c chunk) error {
		s.refs.Add(1) // the worker's
		err := r.send(c)
		if err != nil {
			s.release()
		}
		return err
	}
	if s.holes || !hash {
		if err := send(chunk{src: s, whole: true, off: off}); err != nil || !hash {
			return err
		}
	}
	for i, from := 0, int64(0); from < s.size; i, from = i+1, from+leafSize {
		c := chunk{src: s, from: from, n: min(leafSize, s.size-from), leaf: r.leaf + i, write: !s.holes, off: off + from}
		if err := send(c); err != nil {
			return err
		}
	}
	return nil
}

// slot returns where n bytes at image offset off go in the batch,
// sending the batch first when they do not follow on from it or fit.
func (r *chunkReader) slot(off int64, n int) ([]byte, error) {
	secs := int(roundSector(int64(n)))
	c := &r.cur
	if c.buf != nil && (off != c.off+int64(len(c.buf)) || len(c.buf)+secs > cap(c.buf)) {
		if err := r.flush(); err != nil {
			return nil, err
		}
	}
	if c.buf == nil {
		b, err := r.batch.get(secs, r.quit)
		if err != nil {
			return nil, err
		}
		*c = chunk{buf: b, pool: r.batch, off: off}
	}
	start := len(c.buf)
	c.buf = c.buf[:start+secs]
	clear(c.buf[start+n:]) // a reused buffer's old bytes
	c.spans = append(c.spans, span{start + n, r.leaf})
	return c.buf[start : start+n], nil
}

// readFull reads len(p) bytes of a source from off.
func readFull(s *source, p []byte, off int64) error {
	for k := 0; k < len(p); {
		n, err := unix.Pread(s.fd, p[k:], off+int64(k))
		if err != nil {
			return fmt.Errorf("reading %s: %w", s.path, err)
		}
		if n == 0 {
			return fmt.Errorf("%s changed size while the image was written (ends %d bytes early)", s.path, s.size-off-int64(k))
		}
		k += n
	}
	return nil
}

func roundSector(n int64) int64 { return (n + SectorSize - 1) / SectorSize * SectorSize }

// withFD runs fn with f's descriptor, held open until fn returns.
func withFD(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
