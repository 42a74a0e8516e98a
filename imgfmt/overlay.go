package imgfmt

import (
	"errors"
	"io"
	"os"

	goerrors "github.com/go-errors/errors"
)

// Overlay writes into dst, which must be empty, a qcow2 image of the raw
// disk own (its size the image's) to run over the raw disk base as its
// backing: each 64 KiB chunk where own holds data, read over base's same
// chunk, and no other. The two must never hold data in the same byte (a
// disk's own and shared parts, fs.NanosDisk.WriteOwn and WriteShared):
// where own is empty the guest reads base, and where own holds data its
// chunk holds base's bytes beside it. The image names no backing file:
// QEMU is given base as its backing node.
func Overlay(dst, own, base *os.File) error {
	s, err := scan(own)
	if err != nil {
		return err
	}
	s.r = orReader{own, base}
	if err := writeQCOW2(dst, s); err != nil {
		return goerrors.Errorf("writing the overlay: %w", err)
	}
	return nil
}

// orReader reads a's bytes with b's ORed in (zeros past b's end).
type orReader struct{ a, b io.ReaderAt }

func (r orReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.a.ReadAt(p, off)
	if err != nil {
		return n, err
	}
	q := make([]byte, len(p))
	if m, err := r.b.ReadAt(q, off); err != nil && !(errors.Is(err, io.EOF) && m <= len(q)) {
		return 0, err
	}
	for i, v := range q {
		p[i] |= v
	}
	return n, nil
}
