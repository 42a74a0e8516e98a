package lepton

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/fileutil"
)

// formatVersion changes whenever the bytes ops writes for the same inputs
// change, so cached images from an older ops are rebuilt.
const formatVersion = "ops-image-1"

// ImageSpec is everything an image is made from.
type ImageSpec struct {
	Plan    *Plan
	Guest   Guest
	Out     string // image path
	MinRoot int64  // BaseVolumeSz
	Force   bool   // write it even when nothing changed (-f)
}

// BuildResult says what BuildImage did.
type BuildResult struct {
	Path   string
	Reused bool
	Size   int64
}

// BuildImage writes the image for spec, or reuses the existing one when
// nothing it is made from has changed (same plan, same source files by
// path, size, modification time and inode, same kernel). The image is
// written to a temporary file in the same folder and renamed into place.
func BuildImage(spec ImageSpec) (*BuildResult, error) {
	key, err := spec.key()
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(filepath.Dir(spec.Out), "."+filepath.Base(spec.Out)+".key")
	if st, err := os.Stat(spec.Out); err == nil && !spec.Force {
		if b, err := os.ReadFile(keyFile); err == nil && string(b) == key+"\n"+fileStamp(st) {
			return &BuildResult{Path: spec.Out, Reused: true, Size: st.Size()}, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(spec.Out), 0o755); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	tmp, err := os.CreateTemp(filepath.Dir(spec.Out), "."+filepath.Base(spec.Out)+".tmp-")
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	defer os.Remove(tmp.Name())
	err = spec.Guest.Write(tmp, spec.Plan, spec.MinRoot)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = goerrors.Wrap(cerr, 0)
	}
	if err != nil {
		return nil, err
	}
	os.Remove(keyFile)
	if err := os.Rename(tmp.Name(), spec.Out); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	st, err := os.Stat(spec.Out)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	// The key records the image's own stamp, so an image changed since
	// (booted writable with --skipbuild) is rebuilt.
	if err := fileutil.WriteAtomic(keyFile, []byte(key+"\n"+fileStamp(st)), 0o644); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	return &BuildResult{Path: spec.Out, Size: st.Size()}, nil
}

// fileStamp identifies a file's version without reading it.
func fileStamp(st os.FileInfo) string {
	ino := uint64(0)
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = s.Ino
	}
	return fmt.Sprintf("%d %d %d %o", st.Size(), st.ModTime().UnixNano(), ino, st.Mode())
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
	fmt.Fprintf(h, "%s: %s %s\n", label, p, fileStamp(st))
	return nil
}

// key hashes everything the image is made from.
func (spec ImageSpec) key() (string, error) {
	h := sha256.New()
	p := spec.Plan
	fmt.Fprintf(h, "%s\nguest %s\nminroot %d\n", formatVersion, spec.Guest.Name(), spec.MinRoot)
	plan, err := json.Marshal(struct {
		Program     string
		Args        []string
		Env         []EnvVar
		Cwd         string
		Net         Network
		Mounts      map[string]string
		Passthrough map[string]any
		Klibs       []string
	}{p.Program, p.Args, p.Env, p.Cwd, p.Network, p.Mounts, p.Passthrough, p.Klibs})
	if err != nil {
		return "", err
	}
	h.Write(plan)
	for _, e := range p.Tree.Entries() {
		fmt.Fprintf(h, "\n%q %d %o %q ", e.Path, e.Kind, e.Mode, e.Target)
		switch {
		case e.Kind != opsfs.KindFile:
		case e.Data != nil:
			fmt.Fprintf(h, "data %x", sha256.Sum256(e.Data))
		default:
			if err := stampFile(h, "src", e.Source); err != nil {
				return "", err
			}
		}
	}
	if err := spec.Guest.Key(h, p); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ImageFile is a built image in the ops home.
type ImageFile struct {
	Name string `json:"name"`
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Images lists the built images in the ops home, by name.
func (h Home) Images() ([]ImageFile, error) {
	ents, err := os.ReadDir(h.ImagesDir())
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
		out = append(out, ImageFile{e.Name(), filepath.Join(h.ImagesDir(), e.Name()), info.Size()})
	}
	return out, nil
}

// ImagePath is where an image named name is kept.
func (h Home) ImagePath(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("image name %q must be a plain file name", name)
	}
	return filepath.Join(h.ImagesDir(), name), nil
}
