package lepton

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
	"golang.org/x/sys/unix"
)

// Volume is a disk that outlives images and runs: a Nanos TFS filesystem
// or an ext4 filesystem for the Linux guest, kept in the ops home as
// volumes/NAME:UUID.raw, as nanovms/ops keeps them (so its volumes work).
type Volume struct {
	Name   string
	UUID   string
	Path   string
	Format VolumeFormat
	Size   int64 // apparent size
	Used   int64 // bytes on disk (the file is sparse)
}

// VolumeFormat is a filesystem a guest mounts volumes of.
type VolumeFormat interface {
	// Name is the guest that mounts it, as --guest takes it.
	Name() string
	// create makes a volume file of size bytes labelled label, holding the
	// files of seed when it is not empty, and returns its UUID.
	create(path, label string, size int64, seed string) (uuid string, err error)
	// detect reports whether a volume's first 4 KiB are this format's.
	detect(head []byte) bool
	// usage is how much of the filesystem in r (size bytes) is in use.
	usage(r io.ReaderAt, size int64) (used, total int64, err error)
}

// VolumeFormats are the formats ops makes and mounts: one per guest.
func VolumeFormats() []VolumeFormat { return []VolumeFormat{tfsVolume{}, ext4Volume{}} }

var volumeNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,30}$`) })

// ValidVolumeName reports whether name can name a volume: 1 to 31
// letters, digits, dots, dashes and underscores, a letter or digit first.
func ValidVolumeName(name string) bool { return volumeNameRE().MatchString(name) }

// VolumesDir holds the volumes.
func (h Home) VolumesDir() string { return filepath.Join(h.Dir, "volumes") }

// Volumes lists the volumes in the ops home, by name.
func (h Home) Volumes() ([]Volume, error) {
	ents, err := os.ReadDir(h.VolumesDir())
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
		v := Volume{Name: name, UUID: uuid, Path: filepath.Join(h.VolumesDir(), e.Name())}
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
	for _, vf := range VolumeFormats() {
		if vf.detect(head[:n]) {
			v.Format = vf
			return nil
		}
	}
	return fmt.Errorf("volume %s (%s) holds no filesystem ops knows", v.Name, v.Path)
}

// Volume finds a volume by name or UUID.
func (h Home) Volume(nameOrUUID string) (*Volume, error) {
	vols, err := h.Volumes()
	if err != nil {
		return nil, err
	}
	for _, v := range vols {
		if v.Name == nameOrUUID || v.UUID == nameOrUUID {
			return &v, nil
		}
	}
	// A file that is there but unreadable or not a filesystem: say so.
	if m, _ := filepath.Glob(filepath.Join(h.VolumesDir(), globEscape(nameOrUUID)+":*.raw")); len(m) > 0 {
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

// CreateVolume makes a volume of size bytes (sparse) in format, holding
// the files of seed when given.
func (h Home) CreateVolume(name string, size int64, seed string, format VolumeFormat) (*Volume, error) {
	if !ValidVolumeName(name) {
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
	if _, err := h.Volume(name); err == nil {
		return nil, fmt.Errorf("a volume named %s exists already", name)
	}
	if err := os.MkdirAll(h.VolumesDir(), 0o755); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	tmp, err := os.CreateTemp(h.VolumesDir(), "."+name+".tmp-")
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	uuid, err := format.create(tmp.Name(), name, size, seed)
	if err != nil {
		return nil, err
	}
	v := &Volume{Name: name, UUID: uuid, Path: filepath.Join(h.VolumesDir(), name+":"+uuid+".raw")}
	if err := os.Rename(tmp.Name(), v.Path); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	return v, v.stat()
}

// DeleteVolume removes a volume that nothing uses.
func (h Home) DeleteVolume(nameOrUUID string) error {
	v, err := h.Volume(nameOrUUID)
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

// Usage is how much of the volume's filesystem is in use, in bytes.
func (v *Volume) Usage() (used, size int64, err error) {
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
	used, size, err := v.Usage()
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
// name, each checked to be of the guest's format, before anything boots.
func (h Home) ResolveMounts(mounts map[string]string, g Guest) ([]Mount, error) {
	var out []Mount
	for _, name := range sortedKeys(mounts) {
		_, p, ro, err := ParseMount(name + ":" + mounts[name])
		if err != nil {
			return nil, err
		}
		v, err := h.Volume(name)
		if err != nil {
			return nil, err
		}
		if v.Format.Name() != g.VolumeFormat().Name() {
			return nil, fmt.Errorf("volume %s is a %s volume; the %s guest cannot mount it (make one with ops volume create %s --guest %s)",
				v.Name, v.Format.Name(), g.Name(), v.Name, g.Name())
		}
		out = append(out, Mount{Volume: v, Path: p, ReadOnly: ro})
	}
	return out, nil
}

// tfsVolume is a Nanos volume: a TFS filesystem on a disk of its own
// (no partition table), found by its label or UUID through the
// manifest's mounts.
type tfsVolume struct{}

func (tfsVolume) Name() string { return guestNanos }

func (tfsVolume) detect(head []byte) bool { return bytes.HasPrefix(head, []byte("NVMTFS")) }

func (tfsVolume) usage(r io.ReaderAt, size int64) (int64, int64, error) {
	rd, err := opsfs.OpenTFS(r, size)
	if err != nil {
		return 0, 0, err
	}
	used, total := rd.Usage()
	return used, total, nil
}

func (tfsVolume) create(p, label string, size int64, seed string) (string, error) {
	tree := opsfs.NewTree()
	if seed != "" {
		pl := &Plan{Tree: tree}
		if err := pl.AddDirAt(seed, "/"); err != nil {
			return "", fmt.Errorf("-d %s: %w", seed, err)
		}
	}
	t, err := opsfs.LayoutTFS(tree, nil, opsfs.TFSOptions{Label: label, MinSize: size})
	if err != nil {
		return "", err
	}
	if need := rootSize(t.UsedBytes(), 0) - minFree; need > size {
		return "", fmt.Errorf("-d %s needs a volume of at least %d MiB (its files and the log space Nanos claims before writing)", seed, need>>20)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	defer f.Close()
	if err := f.Truncate(int64(t.SizeSecs) * opsfs.SectorSize); err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	if err := t.WriteAt(f, 0); err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	rd, err := opsfs.OpenTFS(f, int64(t.SizeSecs)*opsfs.SectorSize)
	if err != nil {
		return "", err
	}
	return formatUUID(rd.UUID), nil
}

// ext4Volume is a Linux guest volume: ext4, labelled with the volume's
// name, which the guest's init finds and mounts.
type ext4Volume struct{}

func (ext4Volume) Name() string { return guestLinux }

func (ext4Volume) detect(head []byte) bool {
	return len(head) >= 1082 && head[1080] == 0x53 && head[1081] == 0xEF
}

// usage reads the ext4 superblock's block counts.
func (ext4Volume) usage(r io.ReaderAt, _ int64) (int64, int64, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return 0, 0, err
	}
	le := binary.LittleEndian
	block := int64(1024) << le.Uint32(sb[0x18:])
	blocks := int64(le.Uint32(sb[0x04:])) | int64(le.Uint32(sb[0x150:]))<<32
	free := int64(le.Uint32(sb[0x0C:])) | int64(le.Uint32(sb[0x158:]))<<32
	return (blocks - free) * block, blocks * block, nil
}

func (ext4Volume) create(p, label string, size int64, seed string) (string, error) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return "", errors.New("mkfs.ext4 not found: install e2fsprogs (apt-get install e2fsprogs, or 'make deps')")
	}
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	u[6], u[8] = u[6]&0x0f|0x40, u[8]&0x3f|0x80
	uuid := formatUUID(u)
	if err := os.Truncate(p, size); err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	args := []string{"-q", "-F", "-L", label, "-U", uuid, "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1", "-m", "0"}
	if seed != "" {
		args = append(args, "-d", seed)
	}
	out, err := exec.Command(mkfs, append(args, p)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mkfs.ext4: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return uuid, nil
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
