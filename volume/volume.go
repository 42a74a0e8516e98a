// Package volume is ops's volumes: disks that outlive images and runs,
// kept in the ops home's volumes folder as nanovms/ops keeps them
// (volumes/NAME:UUID.raw), in the format of the guest that mounts them:
// TFS for Nanos, ext4 for the Linux guest.
package volume

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/fileutil"
	"golang.org/x/sys/unix"
)

// Volume is a disk that outlives images and runs: a Nanos TFS filesystem
// or an ext4 filesystem for the Linux guest, kept in the ops home as
// volumes/NAME:UUID.raw, as nanovms/ops keeps them (so its volumes work).
type Volume struct {
	Name   string
	UUID   string
	Path   string
	Format Format
	Size   int64 // apparent size
	Used   int64 // bytes on disk (the file is sparse)
}

// Format is a filesystem a guest mounts volumes of.
type Format interface {
	// Name is the filesystem's name: tfs or ext4.
	Name() string
	// create makes a volume file of size bytes labelled label, holding the
	// files of seed when it is not empty (read by readTree where the
	// format needs a tree), and returns its UUID.
	create(path, label string, size int64, seed string, readTree func(dir string) (*opsfs.Tree, error)) (uuid string, err error)
	// detect reports whether a volume's first 4 KiB are this format's.
	detect(head []byte) bool
	// usage is how much of the filesystem in r (size bytes) is in use.
	usage(r io.ReaderAt, size int64) (used, total int64, err error)
}

// formats are the formats ops makes and mounts: one per guest.
func formats() []Format { return []Format{TFS{}, Ext4{}} }

var volumeNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,30}$`) })

// ValidName reports whether name can name a volume: 1 to 31 letters,
// digits, dots, dashes and underscores, a letter or digit first.
func ValidName(name string) bool { return volumeNameRE().MatchString(name) }

// Store is the volumes folder of an ops home.
type Store struct {
	Dir string
	// ReadTree reads a seed folder (volume create -d) as the file tree
	// of a TFS volume.
	ReadTree func(dir string) (*opsfs.Tree, error)
}

// List lists the volumes, by name.
func (s Store) List() ([]Volume, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	var out []Volume
	for _, e := range ents {
		name, uuid, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".raw"), ":")
		if !ok || !strings.HasSuffix(e.Name(), ".raw") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		v := Volume{Name: name, UUID: uuid, Path: filepath.Join(s.Dir, e.Name())}
		if err := v.stat(); err != nil {
			continue // unreadable: not listed, and `volume delete` still finds it by name
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// stat fills in the volume's format and sizes from its file.
func (v *Volume) stat() error {
	f, err := os.Open(v.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	v.Size = st.Size()
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		v.Used = s.Blocks * 512
	}
	head := make([]byte, 4096)
	n, _ := f.ReadAt(head, 0)
	for _, vf := range formats() {
		if vf.detect(head[:n]) {
			v.Format = vf
			return nil
		}
	}
	return fmt.Errorf("volume %s (%s) holds no filesystem ops knows", v.Name, v.Path)
}

// Get finds a volume by name or UUID.
func (s Store) Get(nameOrUUID string) (*Volume, error) {
	vols, err := s.List()
	if err != nil {
		return nil, err
	}
	for _, v := range vols {
		if v.Name == nameOrUUID || v.UUID == nameOrUUID {
			return &v, nil
		}
	}
	// A file that is there but unreadable or not a filesystem: say so.
	if m, _ := filepath.Glob(filepath.Join(s.Dir, globEscape(nameOrUUID)+":*.raw")); len(m) > 0 {
		v := Volume{Name: nameOrUUID, Path: m[0]}
		if err := v.stat(); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no volume %q (ops volume list shows them; ops volume create %s -s SIZE makes one)", nameOrUUID, nameOrUUID)
}

func globEscape(s string) string {
	return strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`).Replace(s)
}

// Create makes a volume of size bytes (sparse) in format, holding the
// files of seed when given.
func (s Store) Create(name string, size int64, seed string, format Format) (*Volume, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("volume name %q: use 1 to 31 letters, digits, dots, dashes and underscores", name)
	}
	if size < 4<<20 {
		return nil, fmt.Errorf("volume size %d bytes: give at least 4M (-s 1G, say)", size)
	}
	if seed != "" {
		if st, err := os.Stat(seed); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("-d %s: not a folder", seed)
		}
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	// One creator of a name at a time: of two at once, the second finds
	// the first's volume. The lock file goes with the creation, not left
	// behind for each name ever created.
	lock := s.lockFile(name)
	unlock, err := fileutil.TryLock(lock)
	if errors.Is(err, fileutil.ErrLocked) {
		return nil, fmt.Errorf("volume %s is being created by another ops", name)
	} else if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	defer func() {
		_ = fileutil.RemoveLocked(lock)
		unlock()
	}()
	if err := fileutil.ClearStale(s.Dir); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	if _, err := s.Get(name); err == nil {
		return nil, fmt.Errorf("a volume named %s exists already", name)
	}
	tmp, err := fileutil.CreateTemp(s.Dir, name)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	uuid, err := format.create(tmp.Name(), name, size, seed, s.ReadTree)
	if err != nil {
		return nil, err
	}
	// The filesystem reaches the disk before its name does.
	if err := fileutil.SyncFile(tmp.Name()); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	v := &Volume{Name: name, UUID: uuid, Path: filepath.Join(s.Dir, name+":"+uuid+".raw")}
	if err := fileutil.RenameNew(tmp.Name(), v.Path); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	return v, v.stat()
}

// lockFile is held while a volume named name is created.
func (s Store) lockFile(name string) string { return filepath.Join(s.Dir, "."+name+".lock") }

// Delete removes a volume that nothing uses.
func (s Store) Delete(nameOrUUID string) error {
	v, err := s.Get(nameOrUUID)
	if err != nil {
		return err
	}
	unlock, err := v.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.Remove(v.Path); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := fileutil.SyncDir(s.Dir); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// Lock claims the volume for one VM: a second run or instance that asks
// for it gets a clear error instead of two guests writing one filesystem.
// The lock is released by unlock, or when the process holding it ends.
func (v *Volume) Lock() (unlock func(), err error) {
	f, err := os.OpenFile(v.Path, os.O_RDWR, 0)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("volume %s is in use by a running instance or ops run", v.Name)
	}
	return func() { f.Close() }, nil
}

// usage is how much of the volume's filesystem is in use, in bytes.
func (v *Volume) usage() (used, size int64, err error) {
	f, err := os.Open(v.Path)
	if err != nil {
		return 0, 0, goerrors.Wrap(err, 0)
	}
	defer f.Close()
	return v.Format.usage(f, v.Size)
}

// FullNote is the line to print when the volume is (nearly) full after a
// run, naming it: the guest only saw "no space left on device".
func (v *Volume) FullNote() string {
	used, size, err := v.usage()
	// Nanos keeps 1 MiB of log space free, so its volumes count as full
	// a little before their last byte.
	if err != nil || size == 0 || size-used > 2<<20 && used*100 < size*98 {
		return ""
	}
	return fmt.Sprintf("ops: volume %s is full (%d of %d MiB in use); writes failed with \"no space left on device\": make a bigger volume (ops volume create NAME -s SIZE -d FOLDER copies files in)", v.Name, used>>20, size>>20)
}

// Mount is a volume to attach and where the guest mounts it.
type Mount struct {
	Volume   *Volume
	Path     string // absolute guest path
	ReadOnly bool
}

// ParseMount reads NAME:/path[:ro].
func ParseMount(spec string) (name, guestPath string, ro bool, err error) {
	name, rest, ok := strings.Cut(spec, ":")
	if !ok || name == "" {
		return "", "", false, fmt.Errorf("--mounts %q: write VOLUME:/path (or VOLUME:/path:ro)", spec)
	}
	if p, ok := strings.CutSuffix(rest, ":ro"); ok {
		rest, ro = p, true
	}
	if !path.IsAbs(rest) {
		return "", "", false, fmt.Errorf("--mounts %q: the mount path %q must be absolute", spec, rest)
	}
	return name, path.Clean(rest), ro, nil
}

// ResolveMounts finds the volumes config.json's Mounts (and --mounts)
// name, each checked to be of format, the guest's, before anything boots.
func (s Store) ResolveMounts(mounts map[string]string, format Format) ([]Mount, error) {
	var out []Mount
	for _, name := range slices.Sorted(maps.Keys(mounts)) {
		_, p, ro, err := ParseMount(name + ":" + mounts[name])
		if err != nil {
			return nil, err
		}
		v, err := s.Get(name)
		if err != nil {
			return nil, err
		}
		if v.Format.Name() != format.Name() {
			return nil, &FormatError{Volume: v.Name, Have: v.Format, Want: format}
		}
		out = append(out, Mount{Volume: v, Path: p, ReadOnly: ro})
	}
	return out, nil
}

// FormatError is a volume whose format is not the one its guest mounts.
type FormatError struct {
	Volume     string
	Have, Want Format
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("volume %s is a %s volume; this guest mounts %s volumes", e.Volume, e.Have.Name(), e.Want.Name())
}

// ReadTFS opens a TFS (Nanos) volume's filesystem and hands it to fn.
func (s Store) ReadTFS(nameOrUUID string, fn func(rd *opsfs.Reader) error) error {
	v, err := s.Get(nameOrUUID)
	if err != nil {
		return err
	}
	f, err := os.Open(v.Path)
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	defer f.Close()
	rd, err := opsfs.OpenTFS(f, v.Size)
	if err != nil {
		return fmt.Errorf("volume %s (%s): %w; only TFS (Nanos) volumes can be read here", v.Name, v.Format.Name(), err)
	}
	return fn(rd)
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
