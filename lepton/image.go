package lepton

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/fileutil"
)

// formatVersion changes whenever the bytes ops writes for the same inputs
// change, so cached images from an older ops are rebuilt.
const formatVersion = "ops-image-1"

// imageSpec is everything an image is made from.
type imageSpec struct {
	Plan    *Plan
	Guest   Guest
	Out     string // image path
	MinRoot int64  // BaseVolumeSz
	Force   bool   // write it even when nothing changed (-f)
	Shared  *SharedParts
}

// BuildResult says what buildImage did.
type BuildResult struct {
	Path   string
	Reused bool
	Size   int64
	// Base is the raw disk the image, a qcow2 overlay, runs over
	// (SharedParts), or "" for a whole disk.
	Base string
	// stamp is the image's stamp as built or reused (fileutil.Stamp), so
	// a boot finds out when another ops has since replaced it.
	stamp string
}

// buildImage writes the image for spec, or reuses the existing one when
// nothing it is made from has changed (same plan, same source files by
// path, size, modification time and inode, same kernel). The image is
// written to a temporary file in the same folder and renamed into place,
// and only then is its key written, naming the boot of the machine it
// was written in: an image is reused only in that boot, or in a later one
// when its key says it reached the disk (KeepImage, for instances that
// boot it after a restart). So a kill -9 leaves a whole image or none,
// and after a power cut an image that may not have reached the disk is
// built again, never booted torn, without every build waiting for the
// disk. Builds of one image name take turns (a lock file beside it), so
// the image and key a build leaves are both its own.
func buildImage(spec imageSpec) (*BuildResult, error) {
	key, err := spec.key()
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(spec.Out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	unlock, err := fileutil.Lock(lockPath(spec.Out))
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	defer unlock()
	// What builds killed before this one left.
	if err := fileutil.ClearStale(dir); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	boot := bootID()
	keyFile := keyPath(spec.Out)
	old, oldOK := readImageKey(keyFile)
	if st, err := os.Stat(spec.Out); err == nil && !spec.Force && oldOK {
		if old.stamp != fileutil.Stamp(st) {
			// Booted writable (ops run -s): what the guest wrote lives
			// only in this image, and a rebuild would throw it away.
			return nil, fmt.Errorf("%s was changed after it was built (a guest wrote to it with ops run -s); building again would discard that: boot it as it is with -s, or build afresh with -f (--force)", spec.Out)
		}
		if old.key == key && old.trusted(boot) {
			return &BuildResult{Path: spec.Out, Reused: true, Size: st.Size(), Base: BaseOf(spec.Out), stamp: old.stamp}, nil
		}
	}
	ow, split := splits(spec.Guest, spec.Shared)
	err = fileutil.WriteUnsynced(spec.Out, 0o644, func(tmp *os.File) error {
		if split {
			if err := ow.writeOverlay(tmp, spec.Plan, spec.MinRoot, spec.Shared, spec.Out); err != nil {
				return err
			}
		} else if err := spec.Guest.write(tmp, spec.Plan, spec.MinRoot); err != nil {
			return err
		} else if err := os.Remove(spec.Out + baseSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		// The old key is gone before the new image takes the name, and
		// from the disk too when it vouched for an image on the disk.
		if err := os.Remove(keyFile); errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		if oldOK && old.synced {
			return fileutil.SyncDir(dir)
		}
		return nil
	})
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	st, err := os.Stat(spec.Out)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	// The key records the image's own stamp, so an image changed since
	// (booted writable with --skipbuild) is rebuilt.
	k := imageKey{key: key, stamp: fileutil.Stamp(st), boot: boot}
	if err := fileutil.WriteUnsynced(keyFile, 0o644, k.write); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	return &BuildResult{Path: spec.Out, Size: st.Size(), Base: BaseOf(spec.Out), stamp: k.stamp}, nil
}

// imageKey is what an image's key file holds: the key of what it was
// built from, the image's stamp once written, and either the boot it was
// written in or that it is on the disk.
type imageKey struct {
	key, stamp string
	boot       string // the machine's boot id at the write
	synced     bool   // the image reached the disk (KeepImage)
}

// trusted reports whether the image the key describes is whole in the
// boot with id boot.
func (k imageKey) trusted(boot string) bool { return k.synced || (k.boot != "" && k.boot == boot) }

func (k imageKey) write(f *os.File) error {
	last := "synced"
	if !k.synced {
		last = "boot " + k.boot
	}
	_, err := f.WriteString(k.key + "\n" + k.stamp + "\n" + last + "\n")
	return err
}

// readImageKey reads a key file; ok is false when there is none, or it
// is torn or from an older ops (whose images are built again).
func readImageKey(p string) (k imageKey, ok bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return k, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) != 4 || lines[3] != "" || lines[0] == "" || lines[1] == "" {
		return k, false
	}
	k.key, k.stamp = lines[0], lines[1]
	switch boot, isBoot := strings.CutPrefix(lines[2], "boot "); {
	case lines[2] == "synced":
		k.synced = true
	case isBoot && boot != "":
		k.boot = boot
	default:
		return k, false
	}
	return k, true
}

// bootID names the machine's current boot ("" when the kernel does not
// say, so no unsynced image is trusted).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// KeepImage makes sure the image at p and its key are on the disk, for
// an instance that boots it again after the machine restarts: the image
// is synced and its key says so. An image without a key (a path outside
// the ops home's build) is only synced.
func KeepImage(p string) error {
	unlock, err := fileutil.Lock(lockPath(p))
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	defer unlock()
	if err := fileutil.SyncFile(p); err != nil {
		return goerrors.Wrap(err, 0)
	}
	keyFile := keyPath(p)
	k, ok := readImageKey(keyFile)
	if !ok || k.synced {
		return nil
	}
	if st, err := os.Stat(p); err != nil || fileutil.Stamp(st) != k.stamp {
		return nil // not the image the key describes: the next build replaces it
	}
	k.synced, k.boot = true, ""
	if err := fileutil.WriteAtomicWith(keyFile, 0o644, k.write); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// keyPath is where the key of the image at p is kept: .NAME.key beside it.
func keyPath(p string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".key")
}

// lockPath is the file a writer of p (a build of the image, a save of a
// snapshot) holds locked: .NAME.lock beside it.
func lockPath(p string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".lock")
}

func stampFile(h io.Writer, label, p string) error {
	if p == "" {
		fmt.Fprintf(h, "%s: none\n", label)
		return nil
	}
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	h.Write(appendStamp(nil, label, p, st))
	return nil
}

// appendStamp appends the line stampFile writes for p.
func appendStamp(b []byte, label, p string, st os.FileInfo) []byte {
	b = append(b, label...)
	b = append(b, ": "...)
	b = append(b, p...)
	b = append(b, ' ')
	return append(fileutil.AppendStamp(b, st), '\n')
}

// statSources stats the host file behind each entry that has one, side
// by side (a tree of many files spends most of its key here), unless the
// plan already did.
func statSources(ents []*opsfs.Entry) ([]os.FileInfo, error) {
	sts := make([]os.FileInfo, len(ents))
	errs := make([]error, len(ents))
	n := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	wg.Add(n)
	for w := 0; w < n; w++ {
		go func() {
			defer wg.Done()
			for i := w; i < len(ents); i += n {
				e := ents[i]
				switch {
				case e.Kind != opsfs.KindFile || e.Data != nil || e.Source == "":
				case e.Info != nil:
					sts[i] = e.Info
				default:
					sts[i], errs[i] = os.Stat(e.Source)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return sts, nil
}

// appendKeyLine appends what the key holds for one tree entry (st: its
// source's status), as fmt's "\n%q %d %o %q " and a stamp would print it,
// without fmt's cost over thousands of entries.
func appendKeyLine(b []byte, e *opsfs.Entry, st os.FileInfo) []byte {
	b = append(b, '\n')
	b = strconv.AppendQuote(b, e.Path)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(e.Kind), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(e.Mode), 8)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, e.Target)
	b = append(b, ' ')
	switch {
	case e.Kind != opsfs.KindFile:
	case e.Data != nil:
		sum := sha256.Sum256(e.Data)
		b = append(b, "data "...)
		b = hex.AppendEncode(b, sum[:])
	case e.Source == "":
		b = append(b, "src: none\n"...)
	default:
		b = appendStamp(b, "src", e.Source, st)
	}
	return b
}

// key hashes everything the image is made from.
func (spec imageSpec) key() (string, error) {
	h := sha256.New()
	p := spec.Plan
	fmt.Fprintf(h, "%s\nguest %s\nminroot %d\n", formatVersion, spec.Guest.Name(), spec.MinRoot)
	if _, split := splits(spec.Guest, spec.Shared); split {
		fmt.Fprintf(h, "shared %q\n", spec.Shared.Own)
	}
	plan, err := json.Marshal(struct {
		Program     string
		Args        []string
		Env         []EnvVar
		Cwd         string
		Net         Network
		Mounts      map[string]string
		Passthrough map[string]any
		Klibs       []string
		GiveBack    []string `json:",omitempty"`
	}{p.Program, p.Args, p.Env, p.Cwd, p.Network, p.Mounts, p.Passthrough, p.Klibs, p.GiveBack})
	if err != nil {
		return "", err
	}
	h.Write(plan)
	ents := p.Tree.Entries()
	sts, err := statSources(ents)
	if err != nil {
		return "", err
	}
	var b []byte
	for i, e := range ents {
		b = appendKeyLine(b[:0], e, sts[i])
		h.Write(b)
	}
	if err := spec.Guest.key(h, p); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ImageFile is a built image in the ops home.
type ImageFile struct {
	Name string `json:"name"`
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Snapshot is the size of the VM state saved for the image (0: none).
	Snapshot int64 `json:"snapshot"`
}

// Images lists the built images in the ops home, by name.
func (h Home) Images() ([]ImageFile, error) {
	ents, err := os.ReadDir(h.imagesDir())
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var out []ImageFile
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue // keys and unfinished writes
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		p := filepath.Join(h.imagesDir(), e.Name())
		out = append(out, ImageFile{Name: e.Name(), Path: p, Size: info.Size(), Snapshot: h.snapshotSize(p)})
	}
	return out, nil
}
