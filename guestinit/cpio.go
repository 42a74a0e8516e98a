package guestinit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// UnpackCPIO unpacks a newc cpio archive (as ops writes them) from r
// under root: folders, regular files and links, each written over what
// is there, until its trailer. Nothing is written outside root, through
// a link either. A name that is not clean, another kind of entry, or an
// archive that ends early is an error.
func UnpackCPIO(r io.Reader, root string) error {
	dir, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer dir.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [110]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return fmt.Errorf("cpio header: %w", err)
		}
		if string(hdr[:6]) != "070701" {
			return errors.New("cpio: not a newc archive")
		}
		field := func(i int) (uint32, error) {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			return uint32(v), err
		}
		mode, err1 := field(1)
		size, err2 := field(6)
		nameSize, err3 := field(11)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("cpio header: %w", err)
		}
		if nameSize == 0 || nameSize > 4096 {
			return fmt.Errorf("cpio: name of %d bytes", nameSize)
		}
		name := make([]byte, nameSize)
		if _, err := io.ReadFull(br, name); err != nil {
			return fmt.Errorf("cpio name: %w", err)
		}
		if err := skipPad(br, 110+int64(nameSize)); err != nil {
			return err
		}
		n := strings.TrimSuffix(string(name), "\x00")
		if n == "TRAILER!!!" {
			return nil
		}
		if n == "" || strings.Contains(n, "\x00") {
			return fmt.Errorf("cpio: bad name %q", name)
		}
		rel := strings.TrimPrefix(n, "./")
		if n == "." {
			rel = "."
		} else if path.Clean(rel) != rel || path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("cpio: %q is not a clean path inside the archive", n)
		}
		dst := filepath.FromSlash(rel)
		perm := os.FileMode(mode & 0o7777)
		if mode&0o170000 != 0o100000 && mode&0o170000 != 0o120000 && size != 0 {
			return fmt.Errorf("cpio: %s has %d bytes of data", n, size)
		}
		switch mode & 0o170000 {
		case 0o040000:
			if err := dir.MkdirAll(dst, perm|0o700); err != nil {
				return err
			}
		case 0o100000:
			if err := dir.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			dir.Remove(dst)
			f, err := dir.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_EXCL, perm)
			if err != nil {
				return err
			}
			_, err = io.CopyN(f, br, int64(size))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("cpio: %s: %w", n, err)
			}
		case 0o120000:
			if size > 4096 {
				return fmt.Errorf("cpio: link %s of %d bytes", n, size)
			}
			target := make([]byte, size)
			if _, err := io.ReadFull(br, target); err != nil {
				return fmt.Errorf("cpio: %s: %w", n, err)
			}
			if err := dir.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			dir.Remove(dst)
			if err := dir.Symlink(string(target), dst); err != nil {
				return err
			}
		default:
			return fmt.Errorf("cpio: %s: mode %o is not a folder, file or link", n, mode)
		}
		if err := skipPad(br, int64(size)); err != nil {
			return err
		}
	}
}

// skipPad reads the zeros that pad n bytes to a multiple of four.
func skipPad(r io.Reader, n int64) error {
	if p := (4 - n%4) % 4; p > 0 {
		if _, err := io.CopyN(io.Discard, r, p); err != nil {
			return fmt.Errorf("cpio padding: %w", err)
		}
	}
	return nil
}
