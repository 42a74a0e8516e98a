package fs

import (
	"fmt"
	"io"
	"os"
)

// A streaming newc writer and a reader, for tests: the writer is the
// plain form of what WriteCPIO writes in pieces side by side, and the
// reader reads an archive back.

// cpioWriter writes a newc archive with zero timestamps and sequential
// inode numbers, so the same entries always give the same bytes.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	n   int64
	buf []byte
}

// newCPIOWriter starts an archive on w.
func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, buf: make([]byte, 1<<20)}
}

func (c *cpioWriter) write(b []byte) error {
	k, err := c.w.Write(b)
	c.n += int64(k)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.n % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *cpioWriter) header(name string, mode uint32, size int64) error {
	c.ino++
	h, err := appendCPIOHeader(nil, c.ino, name, mode, size)
	if err != nil {
		return err
	}
	return c.write(h)
}

// Add writes one tree entry. Names are stored without the leading slash.
func (c *cpioWriter) Add(e *Entry) error {
	name := e.Path[1:]
	if name == "" {
		name = "."
	}
	perm := uint32(e.Mode.Perm())
	switch e.Kind {
	case KindDir:
		return c.header(name, 0o040000|perm, 0)
	case KindSymlink:
		if err := c.header(name, 0o120000|0o777, int64(len(e.Target))); err != nil {
			return err
		}
		if err := c.write([]byte(e.Target)); err != nil {
			return err
		}
		return c.pad()
	}
	if err := c.header(name, 0o100000|perm, e.Size); err != nil {
		return err
	}
	if e.Data != nil {
		if err := c.write(e.Data); err != nil {
			return err
		}
		return c.pad()
	}
	f, err := os.Open(e.Source)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	defer f.Close()
	n, err := io.CopyBuffer(struct{ io.Writer }{c.w}, io.LimitReader(f, e.Size), c.buf)
	c.n += n
	if err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	if n != e.Size {
		return fmt.Errorf("%s changed size while the image was written (%d bytes, expected %d)", e.Source, n, e.Size)
	}
	return c.pad()
}

// Close writes the trailer.
func (c *cpioWriter) Close() error {
	c.ino = 0
	if err := c.header("TRAILER!!!", 0, 0); err != nil {
		return err
	}
	return nil
}

// cpioEntry is one record read back from a newc archive.
type cpioEntry struct {
	Name string
	Mode uint32
	Data []byte
}

// readCPIO parses a newc archive, so tests can check what the writer
// produced. It stops at the trailer.
func readCPIO(b []byte) ([]cpioEntry, error) {
	var out []cpioEntry
	p := 0
	field := func(i int) (uint64, error) {
		var v uint64
		_, err := fmt.Sscanf(string(b[p+6+8*i:p+14+8*i]), "%08x", &v)
		return v, err
	}
	for {
		if len(b)-p < 110 {
			return nil, fmt.Errorf("cpio: truncated header at %d", p)
		}
		if string(b[p:p+6]) != "070701" {
			return nil, fmt.Errorf("cpio: bad magic at %d", p)
		}
		mode, err1 := field(1)
		size, err2 := field(6)
		nsize, err3 := field(11)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("cpio: bad header at %d", p)
		}
		if nsize == 0 || nsize > 4096 || size > uint64(len(b)) {
			return nil, fmt.Errorf("cpio: bad sizes at %d", p)
		}
		ns := p + 110
		if uint64(len(b)-ns) < nsize {
			return nil, fmt.Errorf("cpio: truncated name at %d", p)
		}
		name := string(b[ns : ns+int(nsize)-1])
		ds := (ns + int(nsize) + 3) &^ 3
		if ds > len(b) || uint64(len(b)-ds) < size {
			return nil, fmt.Errorf("cpio: truncated data for %s", name)
		}
		if name == "TRAILER!!!" {
			return out, nil
		}
		out = append(out, cpioEntry{Name: name, Mode: uint32(mode), Data: b[ds : ds+int(size)]})
		p = (ds + int(size) + 3) &^ 3
	}
}
