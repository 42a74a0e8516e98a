package volume

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
)

// Ext4 is a Linux guest volume: ext4, labelled with the volume's name,
// which the guest's init finds and mounts.
type Ext4 struct{}

// Name implements Format.
func (Ext4) Name() string { return "ext4" }

func (Ext4) detect(head []byte) bool {
	return len(head) >= 1082 && head[1080] == 0x53 && head[1081] == 0xEF
}

// usage reads the ext4 superblock's block counts.
func (Ext4) usage(r io.ReaderAt, _ int64) (int64, int64, error) {
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

func (Ext4) create(p, label string, size int64, seed string, _ func(string) (*opsfs.Tree, error)) (string, error) {
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
