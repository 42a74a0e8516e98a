package qemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	goerrors "github.com/go-errors/errors"
)

// An overlay is a qcow2 file that takes a guest's writes to a raw disk
// while the disk itself stays as it was, like -drive snapshot=on; unlike
// QEMU's own temporary overlay it outlives QEMU, so ops can read back what
// the guest wrote (the Nanos kernel's exit record, on machines without an
// exit device). The file is a qcow2 version 2 image with 64 KiB clusters
// and no backing file named in it: QEMU is given the disk as its backing
// node. Its four clusters are the header, the refcount table, one
// refcount block, and the L1 table.

const (
	qcowMagic       = 0x514649fb
	qcowClusterBits = 16
	qcowCluster     = 1 << qcowClusterBits
	qcowOffsetMask  = 0x00fffffffffffe00
	qcowCompressed  = 1 << 62
)

// CreateOverlay writes an empty overlay for a disk of size bytes at path.
func CreateOverlay(path string, size int64) (err error) {
	l2Covers := int64(qcowCluster) * (qcowCluster / 8)
	l1Size := (size + l2Covers - 1) / l2Covers
	if size <= 0 || l1Size*8 > qcowCluster {
		return fmt.Errorf("overlay for a disk of %d bytes: out of range", size)
	}
	h := make([]byte, 72)
	be := binary.BigEndian
	be.PutUint32(h[0:], qcowMagic)
	be.PutUint32(h[4:], 2)
	be.PutUint32(h[20:], qcowClusterBits)
	be.PutUint64(h[24:], uint64(size))
	be.PutUint32(h[36:], uint32(l1Size))
	be.PutUint64(h[40:], 3*qcowCluster) // L1 table
	be.PutUint64(h[48:], 1*qcowCluster) // refcount table
	be.PutUint32(h[56:], 1)
	reftable := be.AppendUint64(nil, 2*qcowCluster) // its one block
	refblock := make([]byte, 8)                     // 16-bit counts: clusters 0-3 used once
	for i := range 4 {
		be.PutUint16(refblock[2*i:], 1)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = goerrors.Wrap(cerr, 0)
		}
	}()
	for _, w := range []struct {
		b   []byte
		off int64
	}{{h, 0}, {reftable, qcowCluster}, {refblock, 2 * qcowCluster}} {
		if _, err := f.WriteAt(w.b, w.off); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	if err := f.Truncate(4 * qcowCluster); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// ReadOverlay reads len(buf) bytes at off of the disk as the guest sees
// it: from the overlay where the guest wrote, else from base.
func ReadOverlay(overlay, base io.ReaderAt, off int64, buf []byte) error {
	h := make([]byte, 72)
	if _, err := overlay.ReadAt(h, 0); err != nil {
		return fmt.Errorf("overlay header: %w", err)
	}
	be := binary.BigEndian
	if be.Uint32(h) != qcowMagic || be.Uint32(h[4:]) < 2 || be.Uint32(h[4:]) > 3 {
		return errors.New("overlay: not a qcow2 image")
	}
	cb := be.Uint32(h[20:])
	if cb < 9 || cb > 21 {
		return fmt.Errorf("overlay: cluster bits %d out of range", cb)
	}
	cluster := int64(1) << cb
	l1Size, l1Off := int64(be.Uint32(h[36:])), int64(be.Uint64(h[40:]))
	entry := func(table, i int64) (uint64, error) {
		var e [8]byte
		if _, err := overlay.ReadAt(e[:], table+8*i); err != nil {
			return 0, fmt.Errorf("overlay table at %d: %w", table, err)
		}
		return be.Uint64(e[:]), nil
	}
	for len(buf) > 0 {
		n := min(int64(len(buf)), cluster-off%cluster) // within one cluster
		src, at := base, off
		if l1i := off >> (2*cb - 3); l1i < l1Size {
			l1, err := entry(l1Off, l1i)
			if err != nil {
				return err
			}
			if l2Off := int64(l1 & qcowOffsetMask); l2Off != 0 {
				l2, err := entry(l2Off, (off>>cb)&(cluster/8-1))
				if err != nil {
					return err
				}
				if l2&qcowCompressed != 0 {
					return errors.New("overlay: compressed cluster")
				}
				if d := int64(l2 & qcowOffsetMask); d != 0 {
					src, at = overlay, d+off%cluster
				} else if l2&1 != 0 { // version 3: reads as zeros
					clear(buf[:n])
					src = nil
				}
			}
		}
		if src != nil {
			// The base may end before the disk does: zeros past its end.
			if m, err := src.ReadAt(buf[:n], at); err != nil && !(src == base && errors.Is(err, io.EOF)) {
				return fmt.Errorf("reading the disk at %d: %w", off, err)
			} else if err != nil {
				clear(buf[m:n])
			}
		}
		buf, off = buf[n:], off+n
	}
	return nil
}

// OverlaySize is the size of the disk an overlay holds the writes to.
func OverlaySize(overlay io.ReaderAt) (int64, error) {
	var h [32]byte
	if _, err := overlay.ReadAt(h[:], 0); err != nil {
		return 0, fmt.Errorf("overlay header: %w", err)
	}
	if binary.BigEndian.Uint32(h[:]) != qcowMagic {
		return 0, errors.New("overlay: not a qcow2 image")
	}
	return int64(binary.BigEndian.Uint64(h[24:])), nil
}

// OverlayDisk is the disk an overlay and its base make, read as the
// guest sees it (ReadOverlay).
type OverlayDisk struct{ Overlay, Base io.ReaderAt }

// ReadAt implements io.ReaderAt.
func (d OverlayDisk) ReadAt(p []byte, off int64) (int, error) {
	if err := ReadOverlay(d.Overlay, d.Base, off, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
