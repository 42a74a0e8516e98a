package fs

import (
	"fmt"
	"io"
	"math"
	"os"
)

// newc cpio ("070701") writer for the Linux guest's initramfs. Every header
// field is eight hex digits; names and data are padded to four bytes.

// CPIOWriter writes a newc archive with zero timestamps and sequential
// inode numbers, so the same entries always give the same bytes.
type CPIOWriter struct {
	w   io.Writer
	ino uint32
	n   int64
	buf []byte
}

// NewCPIOWriter starts an archive on w.
func NewCPIOWriter(w io.Writer) *CPIOWriter {
	return &CPIOWriter{w: w, buf: make([]byte, 1<<20)}
}

func (c *CPIOWriter) write(b []byte) error {
	k, err := c.w.Write(b)
	c.n += int64(k)
	return err
}

func (c *CPIOWriter) pad() error {
	if r := c.n % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *CPIOWriter) header(name string, mode uint32, size int64) error {
	c.ino++
	h, err := appendCPIOHeader(nil, c.ino, name, mode, size)
	if err != nil {
		return err
	}
	return c.write(h)
}

// appendCPIOHeader appends an entry's header, name and the padding after it.
func appendCPIOHeader(b []byte, ino uint32, name string, mode uint32, size int64) ([]byte, error) {
	if size > math.MaxUint32 {
		return nil, fmt.Errorf("%s: %d bytes is too large for a cpio archive", name, size)
	}
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	start := len(b)
	b = append(b, "070701"...)
	for _, v := range [13]uint32{ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, 0, 0, uint32(len(name) + 1), 0} {
		b = appendHex8(b, v)
	}
	b = append(b, name...)
	b = append(b, 0)
	return append(b, pad4[:(4-(len(b)-start)%4)%4]...), nil
}

var pad4 [4]byte

// appendHex8 appends v as eight lower-case hex digits.
func appendHex8(b []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[v>>uint(shift)&0xf])
	}
	return b
}

// Add writes one tree entry. Names are stored without the leading slash.
func (c *CPIOWriter) Add(e *Entry) error {
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
func (c *CPIOWriter) Close() error {
	c.ino = 0
	if err := c.header("TRAILER!!!", 0, 0); err != nil {
		return err
	}
	return nil
}

// CPIOEntry is one record read back from a newc archive.
type CPIOEntry struct {
	Name string
	Mode uint32
	Data []byte
}

// ReadCPIO parses a newc archive, so tests can check what the writer
// produced. It stops at the trailer.
func ReadCPIO(b []byte) ([]CPIOEntry, error) {
	var out []CPIOEntry
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
		out = append(out, CPIOEntry{Name: name, Mode: uint32(mode), Data: b[ds : ds+int(size)]})
		p = (ds + int(size) + 3) &^ 3
	}
}
