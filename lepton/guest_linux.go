package lepton

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"strings"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/linuxkernel"
	"github.com/opsdev/ops/qemu"
	"github.com/opsdev/ops/volume"
)

// linuxGuest is the Linux microVM guest: the host distribution's kernel
// booting an initramfs that holds ops's own init, the drivers it loads,
// and the tree. The program is the only process besides init.
type linuxGuest struct {
	Kernel *linuxkernel.Kernel
	Init   *io.SectionReader // ops's init program, embedded in ops
}

// Name implements Guest.
func (g *linuxGuest) Name() string { return guestLinux }

// imageFile implements Guest: ".initramfs" keeps a Linux guest's image
// apart from a Nanos image of the same name.
func (g *linuxGuest) imageFile(name string) string { return name + ".initramfs" }

// env implements Guest: the Linux guest adds nothing of its own.
func (g *linuxGuest) env() map[string]string { return nil }

// VolumeFormat implements Guest: ext4 volumes, mounted by init.
func (g *linuxGuest) VolumeFormat() volume.Format { return volume.Ext4{} }

// key implements Guest: the kernel version, the init and the modules.
func (g *linuxGuest) key(h io.Writer, p *Plan) error {
	if g.Kernel == nil {
		return errors.New("no Linux guest kernel")
	}
	// The init is ops's own embedded program: a CRC tells its builds
	// apart, and costs 0.3 ms where SHA-256 of its 2.5 MB costs 16.
	r, err := g.initReader()
	if err != nil {
		return err
	}
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if _, err := io.Copy(crc, r); err != nil {
		return fmt.Errorf("reading the embedded init: %w", err)
	}
	fmt.Fprintf(h, "linux %s init %d %08x\n", g.Kernel.Version, g.Init.Size(), crc.Sum32())
	for _, m := range append(append([]string(nil), g.Kernel.Modules...), g.Kernel.LateModules...) {
		if err := stampFile(h, "module", m); err != nil {
			return err
		}
	}
	return nil
}

// initReader reads the embedded init program in place, from its start.
func (g *linuxGuest) initReader() (*io.SectionReader, error) {
	if g.Init == nil {
		return nil, errors.New("this ops was built without the Linux guest init; build it with 'make'")
	}
	return io.NewSectionReader(g.Init, 0, g.Init.Size()), nil
}

// write implements Guest: the initramfs holds the plan's tree, then ops's
// init, the modules in load order and the manifest under /.ops.
func (g *linuxGuest) write(f *os.File, p *Plan, _ int64) error {
	r, err := g.initReader()
	if err != nil {
		return err
	}
	// One buffer of the init's size: growing one to 2.5 MB step by step
	// made the whole build take ~1.6 times as long.
	initProg := make([]byte, r.Size())
	if _, err := io.ReadFull(r, initProg); err != nil {
		return fmt.Errorf("reading the embedded init: %w", err)
	}
	tree := opsfs.NewTree()
	for _, e := range p.Tree.Entries() {
		if e.Path == "/.ops" || strings.HasPrefix(e.Path, "/.ops/") {
			return fmt.Errorf("%s: /.ops is reserved for ops in the Linux guest", e.Path)
		}
		if err := tree.Add(*e); err != nil {
			return err
		}
	}
	k := g.Kernel
	if len(p.Mounts) > 0 {
		if k, err = g.withDiskDriver(); err != nil {
			return err
		}
	}
	man, err := json.Marshal(initManifest(p, k, false))
	if err != nil {
		return err
	}
	extra := []opsfs.Entry{
		{Path: initPath, Kind: opsfs.KindFile, Data: initProg, Mode: 0o755},
		{Path: manifestPath, Kind: opsfs.KindFile, Data: man},
	}
	for i, mod := range k.Modules {
		st, err := os.Stat(mod)
		if err != nil {
			return err
		}
		extra = append(extra, opsfs.Entry{Path: fmt.Sprintf("%s/%02d-%s", modulesDir, i, path.Base(mod)), Kind: opsfs.KindFile, Source: mod, Size: st.Size()})
	}
	for i, mod := range k.LateModules {
		st, err := os.Stat(mod)
		if err != nil {
			return err
		}
		extra = append(extra, opsfs.Entry{Path: fmt.Sprintf("%s/late-%02d-%s", modulesDir, i, path.Base(mod)), Kind: opsfs.KindFile, Source: mod, Size: st.Size()})
	}
	for _, d := range []string{"/dev", "/proc", "/sys", "/tmp", "/etc"} {
		extra = append(extra, opsfs.Entry{Path: d, Kind: opsfs.KindDir})
	}
	for _, e := range extra {
		if err := tree.Add(e); err != nil {
			return err
		}
	}
	return opsfs.WriteCPIO(f, tree.Entries())
}

// withDiskDriver is the kernel with the virtio block driver (and what it
// needs) added to the modules init loads: volumes are disks, and a guest
// without volumes is spared loading it.
func (g *linuxGuest) withDiskDriver() (*linuxkernel.Kernel, error) {
	k := *g.Kernel
	if k.ModDir == "" {
		return &k, nil
	}
	more, err := linuxkernel.ModuleOrder(k.ModDir, append(linuxkernel.GuestModules(), "virtio_blk"))
	if err != nil {
		return nil, err
	}
	k.Modules = more
	return &k, nil
}

// VM implements Guest. The Linux guest boots on microvm only, its memory
// sized to the initramfs unless set. Under emulation QEMU runs without
// transparent huge pages (the guest touches ~90 MiB in small pieces while
// it boots: ~0.08 s sooner to hello), and the kernel is told the TSC's
// rate, which emulation runs at the host's.
func (g *linuxGuest) VM(b Boot) (qemu.VM, error) {
	vm, err := baseVM(b)
	if err != nil {
		return vm, err
	}
	if vm.Machine != qemu.MicroVM {
		return vm, errors.New("the Linux guest boots on microvm only")
	}
	vm.Kernel = g.Kernel.Image
	vm.Initrd = b.Image.Path
	vm.Drives = volumeDrives(b)
	if vm.MemoryMB == 0 {
		vm.MemoryMB = linuxMemoryMB(b.Image.Size)
	}
	khz := 0
	if b.Accel == qemu.TCG {
		vm.Pages = qemu.PagesSmall
		cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
		khz = qemu.TSCkHz(string(cpuinfo))
	}
	vm.Append = linuxCommandLine(b.Run.Debug || b.Run.ShowDebug, khz)
	return vm, nil
}

// linuxMemoryMB sizes the Linux guest: the initramfs sits in memory twice
// while the kernel unpacks it, and the program needs room beyond that.
func linuxMemoryMB(imageBytes int64) int {
	mb := int(2*imageBytes>>20) + 192
	mb = (mb + 63) / 64 * 64
	return max(mb, 256)
}
