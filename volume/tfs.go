package volume

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
)

// TFS is a Nanos volume: a TFS filesystem on a disk of its own (no
// partition table), found by its label or UUID through the manifest's
// mounts.
type TFS struct{}

// Name implements Format.
func (TFS) Name() string { return "tfs" }

func (TFS) detect(head []byte) bool { return bytes.HasPrefix(head, []byte("NVMTFS")) }

func (TFS) usage(r io.ReaderAt, size int64) (int64, int64, error) {
	rd, err := opsfs.OpenTFS(r, size)
	if err != nil {
		return 0, 0, err
	}
	used, total := rd.Usage()
	return used, total, nil
}

func (TFS) create(p, label string, size int64, seed string, readTree func(string) (*opsfs.Tree, error)) (string, error) {
	tree := opsfs.NewTree()
	if seed != "" {
		if readTree == nil {
			return "", errors.New("-d: this volume store cannot read folders")
		}
		var err error
		if tree, err = readTree(seed); err != nil {
			return "", fmt.Errorf("-d %s: %w", seed, err)
		}
	}
	t, err := opsfs.LayoutTFS(tree, nil, opsfs.TFSOptions{Label: label, MinSize: size})
	if err != nil {
		return "", err
	}
	if need := TFSSize(t.UsedBytes(), 0) - minFree; need > size {
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

// Room a TFS filesystem Nanos writes to keeps free. Before it writes any
// file data, the Nanos kernel claims two contiguous runs of log space
// (512 KiB each) from free space and fails the write with ENOSPC when it
// cannot; then programs need room of their own: pid files, logs,
// databases.
const (
	logReserve = 2 * opsfs.ExtensionSecs * opsfs.SectorSize
	minFree    = 64 << 20
)

// TFSSize is the size of a TFS filesystem Nanos writes to, for used bytes
// of data and metadata: the log reserve plus the larger of 64 MiB and half
// the data free, rounded up to 512 KiB, at least min (BaseVolumeSz for a
// root filesystem). Image and volume files are sparse, so free space
// costs no disk.
func TFSSize(used, min int64) int64 {
	size := used + logReserve + max(minFree, used/2)
	size = (size + opsfs.RootSlack - 1) / opsfs.RootSlack * opsfs.RootSlack
	return max(size, (min+opsfs.SectorSize-1)/opsfs.SectorSize*opsfs.SectorSize)
}
