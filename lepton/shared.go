package lepton

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/imgfmt"
	"github.com/opsdev/ops/internal/fileutil"
)

// SharedParts has an image written as two files, so that images of the
// same contents share most of their bytes: a base, what every image of
// the same kernel and shared files holds, kept in Dir and linked beside
// the image (the image's path with ".base"), and the image itself, its
// own part: the manifest and its own files. The second container of an
// image writes only its own part. On Nanos the base is the raw disk of
// the boot loader, the boot filesystem and the root filesystem's shared
// files (placed first), and the image a qcow2 overlay over it of the
// partition table, the root filesystem's log and its own files (placed
// last), which takes the guest's writes; read over each other they are
// the disk an image of the same layout written whole is, byte for byte.
// On the Linux guest the base is an initramfs (init, the modules, the
// shared files, and a manifest that names the own part's disk) and the
// image a cpio archive of the own part, a disk init unpacks.
type SharedParts struct {
	// Dir holds the bases, on the image's own filesystem (an image links
	// its base, so it stays while the image does, whatever Dir keeps).
	Dir string
	// Own are host files and folders whose files are the image's own (a
	// container's bind mounts); so is every file ops holds in memory
	// (the host name, hosts, the engine's files). Every other file is
	// shared: the root filesystem's, and the host's that ops adds.
	Own []string
	// Keep is how many bases no image links are kept (the most recently
	// used); 0 means DefaultKeepBases.
	Keep int
	now  func() time.Time // the clock, for tests; nil is time.Now
}

// DefaultKeepBases is how many unlinked bases SharedParts keeps unless
// told otherwise.
const DefaultKeepBases = 4

// baseSuffix is what a base's link beside its image adds to the image's
// path.
const baseSuffix = ".base"

// BaseOf is the base an image at p runs over: its link beside it, or ""
// when the image is a whole disk.
func BaseOf(p string) string {
	if _, err := os.Lstat(p + baseSuffix); err == nil {
		return p + baseSuffix
	}
	return ""
}

// clock is the time now, by which a base's files are settled or not.
func (sh *SharedParts) clock() time.Time {
	if sh.now != nil {
		return sh.now()
	}
	return time.Now()
}

// own reports whether e is the image's own file rather than a shared one.
func (sh *SharedParts) own(e *opsfs.Entry) bool {
	if e.Data != nil {
		return true
	}
	for _, p := range sh.Own {
		p = filepath.Clean(p)
		if e.Source == p || strings.HasPrefix(e.Source, p+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// writeOverlay implements overlayWriter: the image of p as a qcow2
// overlay into f over its base (SharedParts.place), linked beside the
// image at out.
func (g *nanosGuest) writeOverlay(f *os.File, p *Plan, minRoot int64, sh *SharedParts, out string) error {
	disk, err := layoutNanos(p, g.Kernel, minRoot, sh.own)
	if err != nil {
		return err
	}
	h := sha256.New()
	fmt.Fprintf(h, "ops-base-1 %s\n", formatVersion)
	if err := g.key(h, p); err != nil {
		return err
	}
	settled, err := disk.SharedKey(h, sh.clock())
	if err != nil {
		return err
	}
	return g.withCaches(disk, func() error {
		link := out + baseSuffix
		digests, err := sh.place(hex.EncodeToString(h.Sum(nil)[:16]), settled, link, disk.WriteShared)
		if err != nil {
			return err
		}
		own, err := fileutil.CreateTemp(filepath.Dir(out), filepath.Base(out)+".own")
		if err != nil {
			return err
		}
		defer func() {
			own.Close()
			os.Remove(own.Name())
		}()
		if err := disk.WriteOwn(own, digests); err != nil {
			return err
		}
		base, err := os.Open(link)
		if err != nil {
			return goerrors.Wrap(err, 0)
		}
		defer base.Close()
		return imgfmt.Overlay(f, own, base)
	})
}

// place puts the base of key at link: linked from sh.Dir, where it is
// found or written by write and kept, or, when its files are not settled
// (EntriesKey), written there alone. It returns the digests write
// returned with the base.
func (sh *SharedParts) place(key string, settled bool, link string, write func(*os.File) ([][32]byte, error)) ([][32]byte, error) {
	if !settled {
		var digests [][32]byte
		err := fileutil.WriteUnsynced(link, 0o644, func(tmp *os.File) (err error) {
			digests, err = write(tmp)
			return err
		})
		return digests, err
	}
	for try := 0; ; try++ {
		base, digests, err := sh.base(key, write)
		if err != nil {
			return nil, err
		}
		// Another build may prune the base between the two (when more
		// than Keep others are in use at once): write it again.
		if err = linkBase(base, link); err == nil {
			return digests, nil
		} else if !errors.Is(err, os.ErrNotExist) || try > 0 {
			return nil, err
		}
	}
}

// linkBase links base at link, in place of what was there.
func linkBase(base, link string) error {
	tmp, err := fileutil.CreateTemp(filepath.Dir(link), filepath.Base(link))
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	tmp.Close()
	os.Remove(tmp.Name())
	if err := os.Link(base, tmp.Name()); err != nil {
		return goerrors.Errorf("linking the image's base (the bases' folder must be on the image's filesystem): %w", err)
	}
	if err := os.Rename(tmp.Name(), link); err != nil {
		os.Remove(tmp.Name())
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// base is the base of key in sh.Dir and its root filesystem's shared
// digests: the one there, or one written by write and kept. The unlinked
// bases beyond sh.Keep, the least recently used first, are removed.
func (sh *SharedParts) base(key string, write func(*os.File) ([][32]byte, error)) (string, [][32]byte, error) {
	if err := os.MkdirAll(sh.Dir, 0o755); err != nil {
		return "", nil, goerrors.Wrap(err, 0)
	}
	if err := fileutil.ClearStale(sh.Dir); err != nil {
		return "", nil, goerrors.Wrap(err, 0)
	}
	p := filepath.Join(sh.Dir, key)
	boot := bootID()
	if d, ok := readBaseDigests(p, boot); ok {
		// Most recently used: its access time; its modification time
		// stays when it was written, which names it in snapshot keys.
		if st, err := os.Stat(p); err == nil && os.Chtimes(p, time.Now(), st.ModTime()) == nil {
			return p, d, nil
		}
	}
	var digests [][32]byte
	err := fileutil.WriteUnsynced(p, 0o644, func(tmp *os.File) (err error) {
		if digests, err = write(tmp); err != nil {
			return err
		}
		// The digests are in place before the base is.
		return fileutil.WriteUnsynced(p+digestsSuffix, 0o644, func(f *os.File) error {
			_, err := f.Write(encodeBaseDigests(boot, digests))
			return err
		})
	})
	if err != nil {
		return "", nil, goerrors.Wrap(err, 0)
	}
	sh.prune(key)
	return p, digests, nil
}

// digestsSuffix names the file beside a base that holds its root
// filesystem's shared digests, which an image's own part needs for its
// UUID.
const digestsSuffix = ".digests"

// encodeBaseDigests is the boot the base was written in (it is not
// synced: after a power cut it may be torn, and is then written again),
// the digests, and their SHA-256, so a torn or damaged file is never
// read as digests.
func encodeBaseDigests(boot string, d [][32]byte) []byte {
	b := make([]byte, 0, 32*(len(d)+3))
	b = append(b, boot...)
	b = append(b, '\n')
	for _, x := range d {
		b = append(b, x[:]...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// readBaseDigests reads the digests kept beside the base at p, if both
// are there, whole, and written in this boot.
func readBaseDigests(p, boot string) ([][32]byte, bool) {
	if _, err := os.Stat(p); err != nil || boot == "" {
		return nil, false
	}
	b, err := os.ReadFile(p + digestsSuffix)
	if err != nil {
		return nil, false
	}
	return parseBaseDigests(b, boot)
}

// parseBaseDigests reads encodeBaseDigests's bytes, if whole and of boot.
func parseBaseDigests(b []byte, boot string) ([][32]byte, bool) {
	if len(b) < 32 {
		return nil, false
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	if s := sha256.Sum256(body); !bytes.Equal(s[:], sum) {
		return nil, false
	}
	head, rest, ok := bytes.Cut(body, []byte{'\n'})
	if !ok || string(head) != boot || len(rest)%32 != 0 {
		return nil, false
	}
	d := make([][32]byte, len(rest)/32)
	for i := range d {
		copy(d[i][:], rest[32*i:])
	}
	return d, true
}

// prune removes the bases no image links beyond the sh.Keep most
// recently used, never keep's; a failure only leaves one.
func (sh *SharedParts) prune(keep string) {
	n := sh.Keep
	if n <= 0 {
		n = DefaultKeepBases
	}
	ents, err := os.ReadDir(sh.Dir)
	if err != nil {
		return
	}
	type base struct {
		name string
		used time.Time
	}
	var unlinked []base
	for _, e := range ents {
		if e.Name() == keep || strings.Contains(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		st, err := os.Stat(filepath.Join(sh.Dir, e.Name()))
		if err != nil || linkCount(st) > 1 {
			continue
		}
		used := st.ModTime()
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			used = time.Unix(s.Atim.Unix())
		}
		unlinked = append(unlinked, base{e.Name(), used})
	}
	slices.SortFunc(unlinked, func(a, b base) int { return b.used.Compare(a.used) })
	for _, b := range unlinked[min(n, len(unlinked)):] {
		p := filepath.Join(sh.Dir, b.name)
		if err := os.Remove(p); err == nil || errors.Is(err, os.ErrNotExist) {
			os.Remove(p + digestsSuffix)
		}
	}
}

// linkCount is how many names a file has.
func linkCount(st os.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Nlink)
	}
	return 1
}

// overlayWriter is a guest that writes an image as an overlay over a
// shared base (SharedParts).
type overlayWriter interface {
	writeOverlay(f *os.File, p *Plan, minRoot int64, sh *SharedParts, out string) error
}

// splits reports whether g writes the image of a build with sh as an
// overlay over a base: both guests, but for a Nanos UEFI disk.
func splits(g Guest, sh *SharedParts) (overlayWriter, bool) {
	w, ok := g.(overlayWriter)
	if n, isNanos := g.(*nanosGuest); isNanos && n.UEFI != "" {
		ok = false
	}
	return w, ok && sh != nil
}
