package fs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Placing file contents into an image. The kernel copies each source file
// into its place with copy_file_range, so the bytes are not copied through
// ops's memory on their way (a TFS still reads each file once, through one
// small reused buffer, for its UUID's hash). Filesystems that refuse get a
// pread/pwrite loop. Several copies run at once, beside the hash; whoever
// opened a source hands its descriptor over, so each file is opened once.

// copyBuf is the size of the buffers used for hashing and for the
// fallback copy: small enough to stay in the CPU's cache, and reused, so
// no buffer grows with a file's size.
const copyBuf = 128 << 10

// source is one open source file, shared by whoever still needs it (the
// one hashing it and the copier); the last to finish closes it.
type source struct {
	fd    int
	path  string // host path, for errors
	size  int64
	holes bool // the file has holes: copy only its data
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
	s := &source{fd: fd, path: path, size: size, holes: st.Blocks*512 < st.Size}
	s.refs.Store(refs)
	return s, nil
}

// copyJob places a whole source at off in the image.
type copyJob struct {
	src *source
	off int64
}

// copier runs copy jobs into the image file dst on a few goroutines.
type copier struct {
	dst    int
	jobs   chan copyJob
	wg     sync.WaitGroup
	noCFR  atomic.Bool // copy_file_range refused once: use the fallback
	failed atomic.Bool
	mu     sync.Mutex
	err    error
}

// newCopier returns a copier into dst with one worker per CPU taking
// jobs (workers false: the caller places files itself, with c.place).
func newCopier(dst int, workers bool) *copier {
	c := &copier{dst: dst}
	if workers {
		c.jobs = make(chan copyJob, 64)
		n := runtime.GOMAXPROCS(0)
		c.wg.Add(n)
		for i := 0; i < n; i++ {
			go c.work()
		}
	}
	return c
}

func (c *copier) work() {
	defer c.wg.Done()
	var buf []byte // for the fallback only, made on first use
	for j := range c.jobs {
		if !c.failed.Load() {
			if err := c.place(j, &buf); err != nil {
				c.fail(err)
			}
		}
		j.src.release()
	}
}

func (c *copier) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.failed.Store(true)
}

// wait finishes every job and returns the first error.
func (c *copier) wait() error {
	if c.jobs != nil {
		close(c.jobs)
		c.wg.Wait()
	}
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
		k, err := unix.Pread(s.fd, (*buf)[:min(n, int64(len(*buf)))], from)
		if err != nil {
			return fmt.Errorf("reading %s: %w", s.path, err)
		}
		if k == 0 {
			return fmt.Errorf("%s changed size while the image was written (ends %d bytes early)", s.path, n)
		}
		if err := pwriteAll(c.dst, (*buf)[:k], to); err != nil {
			return err
		}
		from, to, n = from+int64(k), to+int64(k), n-int64(k)
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

// hashSource feeds a source's n bytes to h, read through buf.
func hashSource(s *source, h io.Writer, buf []byte) error {
	for off := int64(0); off < s.size; {
		k, err := unix.Pread(s.fd, buf[:min(s.size-off, int64(len(buf)))], off)
		if err != nil {
			return fmt.Errorf("reading %s: %w", s.path, err)
		}
		if k == 0 {
			return fmt.Errorf("%s changed size while the image was written (ends %d bytes early)", s.path, s.size-off)
		}
		h.Write(buf[:k])
		off += int64(k)
	}
	return nil
}

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
