package fs

import (
	"fmt"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// WriteCPIO writes entries, in order, as the newc archive a CPIOWriter
// would write (the trailer included) into f, which must be empty. Every
// entry's place is known from the sizes alone, so the archive is written
// in pieces side by side: runs of headers and small files gathered in a
// buffer and written in one call, and each larger file placed by the
// kernel (copy_file_range). Padding is never written: the file is
// extended to its full size first and reads as zeros there.
func WriteCPIO(f *os.File, entries []*Entry) (err error) {
	defer wrapIO(&err)
	pieces, size, bufLen, err := layoutCPIO(entries)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	return withFD(f, func(fd int) error {
		c := newCopier(fd)
		work := make(chan *cpioPiece)
		var wg sync.WaitGroup
		n := min(runtime.GOMAXPROCS(0), len(pieces))
		wg.Add(n)
		for i := 0; i < n; i++ {
			go func() {
				defer wg.Done()
				// One byte more: readSmall asks for one past a file's end.
				buf := make([]byte, 0, bufLen+1)
				for p := range work {
					if c.failed.Load() {
						continue
					}
					if err := p.write(fd, buf, c); err != nil {
						c.fail(err)
					}
				}
			}()
		}
		for _, p := range pieces {
			work <- p
		}
		close(work)
		wg.Wait()
		return c.wait()
	})
}

// Below this size a file's contents go into its piece's buffer: for
// small files one read beats a copy_file_range and a write of their own.
const cpioInlineMax = 32 << 10

// cpioPieceMax bounds a piece's buffered bytes (more only when one entry
// alone needs it).
const cpioPieceMax = 256 << 10

// cpioPiece is entries [lo, hi) of the archive, starting at off. All but
// a large last file go in one buffer; a large last file is written after,
// from its own bytes or by the kernel.
type cpioPiece struct {
	entries []*Entry
	ino     uint32 // the first entry's inode number
	off     int64
	inline  int    // buffered bytes
	big     *Entry // the last entry, whose contents are not buffered
	trailer bool   // the piece ends with the trailer
}

// cpioName is an entry's name in the archive: no leading slash.
func cpioName(e *Entry) string {
	if e.Path == "/" {
		return "."
	}
	return e.Path[1:]
}

// layoutCPIO splits the archive into pieces and returns its size and
// the largest piece buffer needed.
func layoutCPIO(entries []*Entry) ([]*cpioPiece, int64, int, error) {
	var pieces []*cpioPiece
	var cur *cpioPiece
	off := int64(0)
	bufLen := 0
	for i, e := range entries {
		if e.Kind == KindFile && e.Data == nil && e.Size > math32 {
			return nil, 0, 0, fmt.Errorf("%s: %d bytes is too large for a cpio archive", e.Path, e.Size)
		}
		hdr := align4(110 + len(cpioName(e)) + 1)
		inline, data := hdr, int64(0)
		big := false
		switch {
		case e.Kind == KindSymlink:
			inline += align4(len(e.Target))
		case e.Kind != KindFile:
		case e.Size <= cpioInlineMax: // Tree.Add sets Size for literal contents too
			inline += align4(int(e.Size))
		default:
			big, data = true, int64(align4(int(e.Size)))
		}
		if cur == nil || cur.big != nil || cur.inline+inline > cpioPieceMax {
			cur = &cpioPiece{ino: uint32(i + 1), off: off}
			pieces = append(pieces, cur)
		}
		cur.entries = append(cur.entries, e)
		cur.inline += inline
		if big {
			cur.big = e
		}
		bufLen = max(bufLen, cur.inline)
		off += int64(inline) + data
	}
	// The trailer, numbered 1 as CPIOWriter.Close numbers it.
	tr := align4(110 + len("TRAILER!!!") + 1)
	if cur == nil || cur.big != nil || cur.inline+tr > cpioPieceMax {
		cur = &cpioPiece{off: off}
		pieces = append(pieces, cur)
	}
	cur.trailer = true
	cur.inline += tr
	bufLen = max(bufLen, cur.inline)
	return pieces, off + int64(tr), bufLen, nil
}

const math32 = 1<<32 - 1

func align4(n int) int { return (n + 3) &^ 3 }

// write builds the piece's buffered bytes in buf and writes them, then
// writes a large last file's contents.
func (p *cpioPiece) write(fd int, buf []byte, c *copier) error {
	b := buf[:0]
	var bigOff int64
	for i, e := range p.entries {
		ino := p.ino + uint32(i)
		perm := uint32(e.Mode.Perm())
		var err error
		switch e.Kind {
		case KindDir:
			b, err = appendCPIOHeader(b, ino, cpioName(e), 0o040000|perm, 0)
		case KindSymlink:
			b, err = appendCPIOHeader(b, ino, cpioName(e), 0o120000|0o777, int64(len(e.Target)))
			b = append(b, e.Target...)
		default:
			b, err = appendCPIOHeader(b, ino, cpioName(e), 0o100000|perm, e.Size)
			switch {
			case e == p.big:
				bigOff = p.off + int64(len(b))
			case e.Data != nil:
				b = append(b, e.Data...)
			default:
				b, err = readSmall(b, e)
			}
		}
		if err != nil {
			return err
		}
		b = append(b, pad4[:(4-len(b)%4)%4]...)
	}
	if p.trailer {
		var err error
		if b, err = appendCPIOHeader(b, 1, "TRAILER!!!", 0, 0); err != nil {
			return err
		}
	}
	if err := pwriteAll(fd, b, p.off); err != nil {
		return err
	}
	if p.big == nil {
		return nil
	}
	if p.big.Data != nil {
		return pwriteAll(fd, p.big.Data, bigOff)
	}
	s, err := openSource(p.big.Source, p.big.Size, 1)
	if err != nil {
		return fmt.Errorf("%s: %w", p.big.Path, err)
	}
	defer s.release()
	var fallback []byte
	if err := c.place(copyJob{src: s, off: bigOff}, &fallback); err != nil {
		return fmt.Errorf("%s: %w", p.big.Path, err)
	}
	return nil
}

// readSmall appends a small file's e.Size bytes to b, in one read that
// also asks for one byte more, so a file that has grown is noticed.
func readSmall(b []byte, e *Entry) ([]byte, error) {
	fd, err := unix.Open(e.Source, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return b, fmt.Errorf("%s: %w", e.Path, &os.PathError{Op: "open", Path: e.Source, Err: err})
	}
	defer unix.Close(fd)
	start := len(b)
	want := int(e.Size) + 1
	if cap(b)-start < want {
		// Only the byte that detects growth does not fit: read it apart.
		b = append(b, make([]byte, want)...)[:start]
	}
	got := 0
	for got < want {
		k, err := unix.Pread(fd, b[start+got:start+want], int64(got))
		if err != nil {
			return b, fmt.Errorf("reading %s: %w", e.Source, err)
		}
		if k == 0 {
			break
		}
		got += k
	}
	if got != int(e.Size) {
		return b, fmt.Errorf("%s changed size while the image was written (expected %d bytes)", e.Source, e.Size)
	}
	return b[:start+got], nil
}
