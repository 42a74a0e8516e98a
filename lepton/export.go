package lepton

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/imgfmt"
	"github.com/opsdev/ops/internal/fileutil"
)

// Exported is an image written in an import format.
type Exported struct {
	Path   string
	Format imgfmt.Format
	Size   int64
	Took   time.Duration
}

// ExportPath is where an image's copy in format f goes by default: beside
// the raw image, with the format's extension.
func ExportPath(b *Built, f imgfmt.Format) string { return b.Path + f.Ext() }

// Export writes the built image b in format f to out, through a temporary
// file in the same folder renamed into place. Only disk images convert:
// the Linux guest's initramfs is not a disk.
func Export(b *Built, f imgfmt.Format, out string) (*Exported, error) {
	start := time.Now()
	if err := b.Guest.exportable(); err != nil {
		return nil, fmt.Errorf("--format %s: %w", f, err)
	}
	src, err := os.Open(b.Path)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	if err := fileutil.WriteAtomicWith(out, 0o644, func(tmp *os.File) error { return imgfmt.Convert(tmp, src, f) }); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	return &Exported{Path: out, Format: f, Size: st.Size(), Took: time.Since(start)}, nil
}

// FileSum is a written file as a CI step uploads and checks it.
type FileSum struct {
	Path   string `json:"path"`
	Format string `json:"format"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// SumFile reads the file at p for its size and SHA-256.
func SumFile(p, format string) (FileSum, error) {
	f, err := os.Open(p)
	if err != nil {
		return FileSum{}, goerrors.Wrap(err, 0)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileSum{}, goerrors.Wrap(fmt.Errorf("reading %s: %w", p, err), 0)
	}
	return FileSum{Path: p, Format: format, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
