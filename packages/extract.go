// Package packages handles ops packages: the index, downloads and their
// verification, safe extraction of tarballs, and local packages.
package packages

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Limits bound what an archive may unpack to.
type Limits struct {
	MaxFileSize  int64
	MaxTotalSize int64
	MaxEntries   int
	// RootFS unpacks a whole root filesystem (a container image): symlinks
	// are kept as written, absolute ones included, since they mean paths in
	// the guest; they are never followed here, and nothing is written
	// through them. Device files and fifos are skipped.
	RootFS bool
}

// DefaultLimits suit language runtimes and kernel releases.
func DefaultLimits() Limits {
	return Limits{MaxFileSize: 2 << 30, MaxTotalSize: 8 << 30, MaxEntries: 200000}
}

// ExtractTarGz unpacks a gzip-compressed tarball into dest, which must not
// exist yet. On any error dest is removed, so nothing is left half-written.
func ExtractTarGz(r io.Reader, dest string, lim Limits) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not a gzip archive: %w", err)
	}
	defer zr.Close()
	return extractTar(zr, dest, lim)
}

// extractTar unpacks a tar stream into dest (created here). It rejects
// absolute names, names that climb out with "..", links whose target
// leaves dest, device files, and entries beyond the limits.
func extractTar(r io.Reader, dest string, lim Limits) (err error) {
	if err := os.Mkdir(dest, 0o755); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dest)
		}
	}()
	tr := tar.NewReader(r)
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
		if n >= lim.MaxEntries {
			return fmt.Errorf("archive has more than %d entries", lim.MaxEntries)
		}
		name, err := safeName(h.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		target := filepath.Join(dest, filepath.FromSlash(name))
		if err := CheckParents(dest, name); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg, tar.TypeRegA:
			if h.Size < 0 || h.Size > lim.MaxFileSize {
				return fmt.Errorf("%s: %d bytes is over the %d-byte limit for one file", h.Name, h.Size, lim.MaxFileSize)
			}
			if total += h.Size; total > lim.MaxTotalSize {
				return fmt.Errorf("archive unpacks to more than %d bytes", lim.MaxTotalSize)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if lim.RootFS {
				os.Remove(target)
			}
			if err := writeEntry(target, tr, h.Size, os.FileMode(h.Mode)&0o755|0o600); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			if lim.RootFS && !strings.ContainsRune(h.Linkname, 0) && h.Linkname != "" {
				if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
					return err
				}
				os.Remove(target) // a later layer's entry replaces an earlier one
				if err := os.Symlink(h.Linkname, target); err != nil {
					return err
				}
				continue
			}
			if !linkInside(name, h.Linkname) && !inSysroot(name) {
				return fmt.Errorf("%s: link to %q points outside the archive", h.Name, h.Linkname)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src, err := safeName(h.Linkname)
			if err != nil || src == "" {
				return fmt.Errorf("%s: hard link to %q points outside the archive", h.Name, h.Linkname)
			}
			if err := CheckParents(dest, src); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Link(filepath.Join(dest, filepath.FromSlash(src)), target); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader, tar.TypeXHeader:
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if !lim.RootFS {
				return fmt.Errorf("%s: entry type %q (device, fifo or other special file) is not allowed", h.Name, h.Typeflag)
			}
		default:
			return fmt.Errorf("%s: entry type %q (device, fifo or other special file) is not allowed", h.Name, h.Typeflag)
		}
	}
}

// safeName cleans an archive entry name, rejecting absolute names and
// names that climb out of the destination.
func safeName(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("entry name %q contains a NUL byte", name)
	}
	n := strings.ReplaceAll(name, "\\", "/")
	if path.IsAbs(n) {
		return "", fmt.Errorf("entry %q has an absolute path", name)
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("entry %q climbs out of the destination", name)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

// inSysroot reports whether an entry lies in a package's sysroot/, a root
// filesystem whose links name guest paths: an absolute link there means a
// path inside the sysroot, and ".." stops at it, so every link stays in
// the package. Such links are kept as written and never followed.
func inSysroot(name string) bool {
	parts := strings.Split(name, "/")
	return (len(parts) >= 2 && parts[0] == "sysroot") || (len(parts) >= 3 && parts[1] == "sysroot")
}

// linkInside reports whether a symlink at name with target stays inside
// the archive root.
func linkInside(name, target string) bool {
	if target == "" || path.IsAbs(target) || strings.ContainsRune(target, 0) {
		return false
	}
	r := path.Clean(path.Join(path.Dir(name), target))
	return r != ".." && !strings.HasPrefix(r, "../")
}

// CheckParents makes sure no directory on the way to name is a symlink, so
// an earlier link entry cannot redirect a later write.
func CheckParents(dest, name string) error {
	parts := strings.Split(name, "/")
	p := dest
	for _, part := range parts {
		p = filepath.Join(p, part)
		st, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("entry %q would be written through the link %s", name, strings.TrimPrefix(p, dest+string(filepath.Separator)))
		}
	}
	return nil
}

func writeEntry(target string, r io.Reader, size int64, mode os.FileMode) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = errors.New("truncated entry")
	}
	return err
}
