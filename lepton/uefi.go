package lepton

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/qemu"
)

// uefiLoaderFile is the UEFI loader's name in a Nanos release folder.
const uefiLoaderFile = "bootx64.efi"

var errLinuxUEFI = errors.New("Uefi: the Linux guest boots from an initramfs, with no disk for UEFI firmware to boot; use --guest nanos for a UEFI image")

// uefiLoader finds the UEFI loader: UefiBoot from config.json, else the
// release's bootx64.efi.
func uefiLoader(home Home, c *Config) (string, error) {
	if c.UefiBoot != "" {
		if _, err := os.Stat(c.UefiBoot); err != nil {
			return "", fmt.Errorf("UefiBoot: no UEFI loader at %s", c.UefiBoot)
		}
		return c.UefiBoot, nil
	}
	rel, err := home.Releases().Find(c.NanosVersion)
	if err != nil {
		return "", fmt.Errorf("Uefi: no release to take bootx64.efi from (%w); set UefiBoot to a bootx64.efi", err)
	}
	p := filepath.Join(rel.Dir, uefiLoaderFile)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("Uefi: Nanos release %s has no %s; install a release that has one (ops update) or set UefiBoot", rel.Version, uefiLoaderFile)
	}
	return p, nil
}

// writeUEFI writes disk with an EFI System Partition holding loader in
// front of its filesystems (fs.UEFIDisk).
func writeUEFI(f *os.File, disk *opsfs.NanosDisk, loader string) error {
	b, err := os.ReadFile(loader)
	if err != nil {
		return goerrors.Wrap(fmt.Errorf("UEFI loader: %w", err), 0)
	}
	esp, err := opsfs.NewESP(b)
	if err != nil {
		return fmt.Errorf("%s: %w", loader, err)
	}
	return (&opsfs.UEFIDisk{NanosDisk: disk, ESP: esp}).WriteTo(f)
}

// uefiMachine makes rc boot through UEFI firmware: a q35 machine (microvm
// boots the kernel directly and has no firmware to run a loader).
func uefiMachine(rc *RunConfig) error {
	switch rc.Machine {
	case "", qemu.Q35:
		rc.Machine = qemu.Q35
		return nil
	}
	return fmt.Errorf("--uefi boots through UEFI firmware on a q35 machine; --machine %s cannot (drop one of them)", rc.Machine)
}
