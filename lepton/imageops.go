package lepton

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/qemu"
)

// DeleteImage removes a built image named name from the ops home, with
// its build key and its snapshot; an image a VM is using (ops run, an instance) is
// refused, and one being built waits for its build.
func (h Home) DeleteImage(name string) error {
	p, err := h.imagePath(name)
	if err != nil {
		return err
	}
	p = withGuestSuffix(p)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no image %q in %s ('ops image list' lists them)", name, h.imagesDir())
	}
	unlockBuild, err := fileutil.Lock(lockPath(p))
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	defer unlockBuild()
	unlock, err := fileutil.TryLockExisting(p)
	switch {
	case errors.Is(err, fileutil.ErrLocked):
		return fmt.Errorf("image %s is in use by a running VM (ops instance list shows instances); stop it first", name)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no image %q in %s ('ops image list' lists them)", name, h.imagesDir())
	case err != nil:
		return goerrors.Wrap(err, 0)
	}
	defer unlock()
	// The key goes first: a key without its image is never trusted, an
	// image without its key is built again.
	if err := os.Remove(keyPath(p)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return goerrors.Wrap(err, 0)
	}
	if err := os.Remove(p); err != nil {
		return goerrors.Wrap(err, 0)
	}
	h.deleteSnapshot(p)
	if err := fileutil.RemoveLocked(lockPath(p)); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := fileutil.SyncDir(h.imagesDir()); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// ImagesOlderThan names the images last written before cutoff.
func (h Home) ImagesOlderThan(cutoff time.Time) ([]string, error) {
	imgs, err := h.Images()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, im := range imgs {
		if st, err := os.Stat(im.Path); err == nil && st.ModTime().Before(cutoff) {
			out = append(out, im.Name)
		}
	}
	return out, nil
}

// ParseAge reads nanovms/ops's age notation (--lru 2w): a number and a
// unit d (days), w (weeks), m (months of 30 days) or y (years of 365
// days); Go durations such as 36h work too.
func ParseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	day := 24 * time.Hour
	units := map[string]time.Duration{"d": day, "w": 7 * day, "m": 30 * day, "y": 365 * day}
	if len(s) >= 2 {
		n, err := strconv.Atoi(s[:len(s)-1])
		if u, ok := units[s[len(s)-1:]]; ok && err == nil && n > 0 {
			return time.Duration(n) * u, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("%q: write a number and d, w, m (30 days) or y (2w), or a duration such as 36h", s)
}

// ResizeImage grows the root filesystem of the Nanos disk at p to make
// the disk size bytes, offline: the root filesystem is the last
// partition and its size is its partition's, so the file is extended
// (sparse) and the partition entry rewritten.
func ResizeImage(p string, size int64) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if _, _, err := opsfs.OpenNanosDisk(f, st.Size()); err != nil {
		return fmt.Errorf("%s is not a Nanos disk: %w", p, err)
	}
	size = (size + opsfs.SectorSize - 1) / opsfs.SectorSize * opsfs.SectorSize
	if size <= st.Size() {
		return fmt.Errorf("%s is %d bytes already; give a larger size (images only grow)", p, st.Size())
	}
	mbr := make([]byte, opsfs.SectorSize)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return err
	}
	parts, err := opsfs.ReadPartitions(mbr)
	if err != nil {
		return err
	}
	ri := 1
	if parts[0].Type == opsfs.PartTypeEFI {
		ri = 2
	}
	secs := size/opsfs.SectorSize - int64(parts[ri].LBA)
	if secs > 1<<32-1 {
		return fmt.Errorf("%d bytes is more than an MBR partition holds", size)
	}
	parts[ri].Sectors = uint32(secs)
	if err := opsfs.PutPartitions(mbr, parts[:ri+1]); err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	_, err = f.WriteAt(mbr, 0)
	return err
}

// ImageEnv is the environment in a Nanos image's manifest, in order.
func ImageEnv(root *opsfs.Reader) [][2]string {
	env := root.Root.Tuple("environment")
	if env == nil {
		return nil
	}
	var out [][2]string
	for _, k := range env.Keys() {
		v, _ := env.Get(k)
		out = append(out, [2]string{k, opsfs.Format(v)})
	}
	return out
}

// ReadImageFile reads the file at p in an image, following links inside
// the image.
func ReadImageFile(rd *opsfs.Reader, p string) ([]byte, error) {
	p, n, err := followLinks(rd, p)
	if err != nil {
		return nil, err
	}
	b, err := rd.ReadFile(n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}

// followLinks is where p leads in an image and its node: through links
// inside the image, a relative one from its folder, at most 40 as the
// kernel follows.
func followLinks(rd *opsfs.Reader, p string) (string, *opsfs.Tuple, error) {
	for range 40 {
		n, err := rd.Lookup(p)
		if err != nil {
			return "", nil, err
		}
		t, ok := n.Get("linktarget")
		if !ok {
			return p, n, nil
		}
		target := opsfs.Format(t)
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = target
	}
	return "", nil, fmt.Errorf("%s: too many links", p)
}

// CopyOut copies src from an image to the host path dest: a file, or a
// folder when recursive. Links are recreated as links unless deref,
// which copies what a link inside the image names.
func CopyOut(rd *opsfs.Reader, src, dest string, recursive, deref bool) error {
	n, err := rd.Lookup(src)
	if err != nil {
		return err
	}
	if n.Tuple("children") != nil {
		if !recursive {
			return fmt.Errorf("%s is a folder: pass -r", src)
		}
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return err
		}
		ents, err := rd.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := CopyOut(rd, path.Join(src, e.Name), filepath.Join(dest, e.Name), recursive, deref); err != nil {
				return err
			}
		}
		return nil
	}
	if t, ok := n.Get("linktarget"); ok {
		if !deref {
			return os.Symlink(opsfs.Format(t), dest)
		}
		target, _, err := followLinks(rd, src)
		if err != nil {
			return err
		}
		return CopyOut(rd, target, dest, recursive, false)
	}
	b, err := rd.ReadFile(n)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return os.WriteFile(dest, b, 0o644)
}

// FindImage is the file an image argument names: a plain name is an
// image in the ops home (NAME, or a Linux guest's NAME.initramfs when
// there is no NAME), anything with a slash is a path.
func (h Home) FindImage(nameOrPath string) (string, error) {
	if strings.Contains(nameOrPath, "/") {
		return nameOrPath, nil
	}
	p, err := h.imagePath(nameOrPath)
	if err != nil {
		return "", err
	}
	return withGuestSuffix(p), nil
}

// withGuestSuffix is p, or where there is no p, the first image a
// guest's suffix makes of it that exists (the Linux guest's .initramfs).
func withGuestSuffix(p string) string {
	if _, err := os.Stat(p); err == nil {
		return p
	}
	for _, g := range guests() {
		if sfx := g.imageSuffix(); sfx != "" {
			if _, err := os.Stat(p + sfx); err == nil {
				return p + sfx
			}
		}
	}
	return p
}

// ReadImage opens a Nanos image (name or path) and hands fn its root
// filesystem, or its boot filesystem with bootfs.
func (h Home) ReadImage(nameOrPath string, bootfs bool, fn func(rd *opsfs.Reader) error) error {
	p, err := h.FindImage(nameOrPath)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var disk io.ReaderAt = f
	size := st.Size()
	if b := BaseOf(p); b != "" {
		// An overlay over its base (SharedParts).
		base, err := os.Open(b)
		if err != nil {
			return err
		}
		defer base.Close()
		if size, err = qemu.OverlaySize(f); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		disk = qemu.OverlayDisk{Overlay: f, Base: base}
	}
	boot, root, err := opsfs.OpenNanosDisk(disk, size)
	if err != nil {
		head := make([]byte, 6)
		if _, rerr := disk.ReadAt(head, 0); rerr == nil && (&linuxGuest{}).isImage(head) {
			return fmt.Errorf("%s is a Linux-guest image (an initramfs): image tree, ls, cat, cp and env read Nanos images; list it with: cpio -itv < %s", p, p)
		}
		return fmt.Errorf("%s: %w", p, err)
	}
	if bootfs {
		return fn(boot)
	}
	return fn(root)
}
