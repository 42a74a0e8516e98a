package lepton

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/qemu"
	"github.com/opsdev/ops/volume"
)

// nanosGuest is the Nanos unikernel: a disk with a boot filesystem (the
// kernel and klibs) and a TFS root filesystem holding the tree and the
// manifest.
type nanosGuest struct {
	Kernel nanosKernel
	// UEFI is the release's bootx64.efi when the image is for UEFI
	// firmware (Uefi in config.json, --uefi); "" for BIOS and microvm.
	UEFI string
	// Memo is a folder where the boot filesystem's UUID is kept between
	// builds: the release's own ("" keeps none).
	Memo string
}

// Name implements Guest.
func (g *nanosGuest) Name() string { return guestNanos }

// imageFile implements Guest: Nanos images keep the name as given, as
// nanovms/ops names them.
func (g *nanosGuest) imageFile(name string) string { return name }

// key implements Guest: the kernel, the boot loader and each klib used.
func (g *nanosGuest) key(h io.Writer, p *Plan) error {
	for _, f := range []struct{ l, p string }{{"kernel", g.Kernel.Kernel}, {"boot", g.Kernel.Boot}} {
		if err := stampFile(h, f.l, f.p); err != nil {
			return err
		}
	}
	if g.UEFI != "" {
		if err := stampFile(h, "uefi", g.UEFI); err != nil {
			return fmt.Errorf("UEFI loader: %w", err)
		}
	}
	for _, k := range p.Klibs {
		if err := stampFile(h, "klib", filepath.Join(g.Kernel.KlibDir, k)); err != nil {
			return fmt.Errorf("klib %s: %w", k, err)
		}
	}
	return nil
}

// env implements Guest: NANOS_VERSION, as nanovms/ops sets it.
func (g *nanosGuest) env() map[string]string {
	if g.Kernel.Version == "" {
		return nil
	}
	return map[string]string{"NANOS_VERSION": g.Kernel.Version}
}

// VolumeFormat implements Guest: TFS volumes, mounted by the kernel
// through the manifest's mounts.
func (g *nanosGuest) VolumeFormat() volume.Format { return volume.TFS{} }

// write implements Guest.
func (g *nanosGuest) write(f *os.File, p *Plan, minRoot int64) error {
	disk, err := layoutNanos(p, g.Kernel, minRoot)
	if err != nil {
		return err
	}
	save := g.recallBootUUID(disk.BootFS)
	if g.UEFI != "" {
		err = writeUEFI(f, disk, g.UEFI)
	} else {
		err = disk.WriteTo(f)
	}
	if err == nil {
		save()
	}
	return err
}

// recallBootUUID gives the boot filesystem the UUID kept from an earlier
// build with the same kernel and klibs (same stamps: size, modification
// time, inode, mode), so its contents are placed without being hashed; it
// is the same filesystem in every image of a release. It returns what
// keeps the UUID after a write that had to hash them. The memo is only a
// shortcut: when it cannot be read or kept, the UUID is hashed as ever.
func (g *nanosGuest) recallBootUUID(boot *opsfs.TFS) (save func()) {
	none := func() {}
	if g.Memo == "" {
		return none
	}
	h := sha256.New()
	err := boot.UUIDKey(h, func(e *opsfs.Entry) ([]byte, error) {
		st := e.Info
		if st == nil {
			var err error
			if st, err = os.Stat(e.Source); err != nil {
				return nil, err
			}
		}
		return fileutil.AppendStamp([]byte(e.Source+" "), st), nil
	})
	if err != nil {
		return none
	}
	memo := filepath.Join(g.Memo, fmt.Sprintf(".boot-%x.uuid", h.Sum(nil)[:16]))
	if b, err := os.ReadFile(memo); err == nil {
		var uuid [16]byte
		if n, err := hex.Decode(uuid[:], bytes.TrimSpace(b)); err == nil && n == len(uuid) {
			boot.SetUUID(uuid)
			return none
		}
	}
	return func() {
		if uuid, ok := boot.UUID(); ok {
			fileutil.WriteAtomic(memo, []byte(hex.EncodeToString(uuid[:])+"\n"), 0o644)
		}
	}
}

// VM implements Guest. On microvm QEMU loads the kernel directly and the
// disk holds the root filesystem; on q35 the BIOS boots the whole disk.
// Under emulation guest RAM comes from a memfd in 4 KiB pages: Nanos
// touches a little of many 2 MiB regions while it sets up its heaps, and
// huge pages cost it ~12 ms to hello.
func (g *nanosGuest) VM(b Boot) (qemu.VM, error) {
	if g.UEFI != "" {
		if err := uefiMachine(&b.Run); err != nil {
			return qemu.VM{}, err
		}
	}
	vm, err := baseVM(b)
	if err != nil {
		return vm, err
	}
	if g.UEFI != "" {
		if vm.Firmware, err = qemu.FindOVMF(qemu.OVMFPaths()); err != nil {
			return vm, err
		}
	}
	vm.RNG = true
	if b.Accel == qemu.TCG {
		vm.Pages = qemu.PagesMemfdRAM
	}
	vm.Drives = append([]qemu.Drive{{File: b.Image.Path, Snapshot: !b.Writable}}, volumeDrives(b)...)
	if vm.Machine == qemu.MicroVM {
		vm.Kernel = g.Kernel.Kernel
	}
	return vm, nil
}
