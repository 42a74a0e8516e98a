package lepton

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opsdev/ops/qemu"
)

// NanosGuest is the Nanos unikernel: a disk with a boot filesystem (the
// kernel and klibs) and a TFS root filesystem holding the tree and the
// manifest.
type NanosGuest struct {
	Kernel NanosKernel
	// UEFI is the release's bootx64.efi when the image is for UEFI
	// firmware (Uefi in config.json, --uefi); "" for BIOS and microvm.
	UEFI string
}

// Name implements Guest.
func (g *NanosGuest) Name() string { return guestNanos }

// ImageFile implements Guest: Nanos images keep the name as given, as
// nanovms/ops names them.
func (g *NanosGuest) ImageFile(name string) string { return name }

// Key implements Guest: the kernel, the boot loader and each klib used.
func (g *NanosGuest) Key(h io.Writer, p *Plan) error {
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

// Env implements Guest: NANOS_VERSION, as nanovms/ops sets it.
func (g *NanosGuest) Env() map[string]string {
	if g.Kernel.Version == "" {
		return nil
	}
	return map[string]string{"NANOS_VERSION": g.Kernel.Version}
}

// VolumeFormat implements Guest: TFS volumes, mounted by the kernel
// through the manifest's mounts.
func (g *NanosGuest) VolumeFormat() VolumeFormat { return tfsVolume{} }

// Write implements Guest.
func (g *NanosGuest) Write(f *os.File, p *Plan, minRoot int64) error {
	disk, err := LayoutNanos(p, g.Kernel, minRoot)
	if err != nil {
		return err
	}
	if g.UEFI != "" {
		return writeUEFI(f, disk, g.UEFI)
	}
	return disk.WriteTo(f)
}

// VM implements Guest. On microvm QEMU loads the kernel directly and the
// disk holds the root filesystem; on q35 the BIOS boots the whole disk.
// Under emulation guest RAM comes from a memfd in 4 KiB pages: Nanos
// touches a little of many 2 MiB regions while it sets up its heaps, and
// huge pages cost it ~12 ms to hello.
func (g *NanosGuest) VM(b Boot) (qemu.VM, error) {
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
