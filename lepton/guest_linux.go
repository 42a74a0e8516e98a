package lepton

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/arch"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/guestinit"
	"github.com/opsdev/ops/guestinit/bin"
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
func (g *linuxGuest) Name() string { return "linux" }

// imageArch implements Guest: the machine of the first ELF in the
// initramfs, which is init (/.ops sorts before the program's tree).
func (g *linuxGuest) imageArch(head []byte) arch.Arch {
	if i := bytes.Index(head, []byte("\x7fELF")); i >= 0 && len(head) >= i+20 {
		if a, ok := arch.ForELF(elf.Machine(binary.LittleEndian.Uint16(head[i+18:]))); ok {
			return a
		}
	}
	return arch.AMD64
}

// Arch implements Guest: its kernel's.
func (g *linuxGuest) Arch() arch.Arch {
	if g.Kernel == nil {
		return arch.AMD64
	}
	return g.Kernel.Arch.OrAMD64()
}

// prepare implements Guest: nothing to make.
func (g *linuxGuest) prepare(qemu.VM) error { return nil }

// exitCode implements Guest: QEMU's exit device gives the code, or on a
// machine without one (arm64) init's line on the channel.
func (g *linuxGuest) exitCode(_ qemu.VM, res *qemu.Result) (int, error) { return res.GuestExitCode() }

// load implements Guest: the Linux guest with the host's kernel
// (unpacked once into the ops home) and ops's embedded init; for another
// architecture than the host's, the kernel LinuxKernel names, else the
// one unpacked into the ops home's kernels/<arch> (linuxKernel).
func (g *linuxGuest) load(home Home, c *Config, _ bool) (Guest, error) {
	if c.Uefi {
		return nil, errLinuxUEFI
	}
	if o := c.nanosOnly(); len(o) > 0 {
		return nil, fmt.Errorf("%s: only the Nanos kernel reads these; the Linux guest has no such options (use --guest nanos)", strings.Join(o, ", "))
	}
	a, err := c.Target()
	if err != nil {
		return nil, err
	}
	k, err := linuxKernel(home, c.LinuxKernel, a)
	if err != nil {
		return nil, err
	}
	if err := linuxkernel.PrepareBoot(k, home.linuxKernelCache()); err != nil {
		return nil, err
	}
	init, err := bin.Init(a)
	if err != nil {
		return nil, err
	}
	return &linuxGuest{Kernel: k, Init: init}, nil
}

// linuxKernel finds the kernel for a Linux guest of architecture a: the
// one configured (a file, or an unpacked package's folder), else the
// host's own for its architecture, else the package unpacked into the ops
// home's kernels/<arch> (make arm64-kernel puts Debian's arm64 cloud
// kernel there).
func linuxKernel(home Home, configured string, a arch.Arch) (*linuxkernel.Kernel, error) {
	switch {
	case a == arch.Host():
		return linuxkernel.FindFor(a, configured, "/boot", "/lib/modules")
	case configured != "":
		return linuxkernel.FindFor(a, configured, "", "")
	}
	return linuxkernel.FindInRoot(a, home.KernelsDir(a))
}

// installed implements Guest: the host has a kernel for the guest.
func (g *linuxGuest) installed(Home) bool {
	_, err := linuxkernel.Find("", "/boot", "/lib/modules")
	return err == nil
}

// absent implements Guest.
func (g *linuxGuest) absent(err error) bool { return errors.Is(err, linuxkernel.ErrNotFound) }

// missing implements Guest.
func (g *linuxGuest) missing(home Home, a arch.Arch) string {
	if a != arch.Host() {
		return fmt.Sprintf("no %s Linux kernel is unpacked in %s (make arm64-kernel puts Debian's there; or set LinuxKernel)", a, home.KernelsDir(a))
	}
	return "no Linux kernel was found for the Linux guest (run 'make deps' or apt-get install linux-image-cloud-amd64)"
}

// fallback implements Guest.
func (g *linuxGuest) fallback() string { return "no Linux kernel found; run 'make deps'" }

// chosen implements Guest.
func (g *linuxGuest) chosen() string { return "linux " + g.Kernel.Version }

// imageSuffix implements Guest: ".initramfs" keeps a Linux guest's image
// apart from a Nanos image of the same name.
func (g *linuxGuest) imageSuffix() string { return ".initramfs" }

// isImage implements Guest: the image is an initramfs, a newc cpio.
func (g *linuxGuest) isImage(head []byte) bool { return bytes.HasPrefix(head, []byte("070701")) }

// ImageFormat implements Guest.
func (g *linuxGuest) ImageFormat() string { return "initramfs" }

// exportable implements Guest: an initramfs is not a disk.
func (g *linuxGuest) exportable() error {
	return errors.New("the Linux guest's image is an initramfs, not a disk; use --guest nanos for disk formats")
}

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
	for _, m := range slices.Concat(g.Kernel.Modules, g.Kernel.LateModules, g.Kernel.SnapshotModules) {
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
	k, err := g.kernelFor(p, false)
	if err != nil {
		return err
	}
	man, err := json.Marshal(initManifest(p, k, false))
	if err != nil {
		return err
	}
	ents, err := g.initramfs(p.Tree.Entries(), man, k)
	if err != nil {
		return err
	}
	return opsfs.WriteCPIO(f, ents)
}

// kernelFor is the kernel with the drivers p's volumes and shares need,
// and with the disk's driver when own (the image's own part is on a
// disk, writeOverlay).
func (g *linuxGuest) kernelFor(p *Plan, own bool) (*linuxkernel.Kernel, error) {
	volumes, shares := planMounts(p)
	if volumes > 0 || shares > 0 || own {
		return g.withDrivers(volumes > 0 || own, shares > 0)
	}
	return g.Kernel, nil
}

// initramfs is the entries of an initramfs: tree, then ops's init, the
// modules of k in load order, the manifest man and the folders init
// mounts on.
func (g *linuxGuest) initramfs(tree []*opsfs.Entry, man []byte, k *linuxkernel.Kernel) ([]*opsfs.Entry, error) {
	r, err := g.initReader()
	if err != nil {
		return nil, err
	}
	// One buffer of the init's size: growing one to 2.5 MB step by step
	// made the whole build take ~1.6 times as long.
	initProg := make([]byte, r.Size())
	if _, err := io.ReadFull(r, initProg); err != nil {
		return nil, fmt.Errorf("reading the embedded init: %w", err)
	}
	t := opsfs.NewTree()
	for _, e := range tree {
		if err := reservedOps(e); err != nil {
			return nil, err
		}
		if err := t.Add(*e); err != nil {
			return nil, err
		}
	}
	extra := []opsfs.Entry{
		{Path: initPath, Kind: opsfs.KindFile, Data: initProg, Mode: 0o755},
		{Path: manifestPath, Kind: opsfs.KindFile, Data: man},
	}
	for _, mods := range []struct {
		prefix string
		files  []string
	}{{"", k.Modules}, {"late-", k.LateModules}, {"snap-", k.SnapshotModules}} {
		for i, mod := range mods.files {
			st, err := os.Stat(mod)
			if err != nil {
				return nil, err
			}
			extra = append(extra, opsfs.Entry{Path: moduleFile(mods.prefix, i, mod), Kind: opsfs.KindFile, Source: mod, Size: st.Size()})
		}
	}
	for _, d := range []string{"/dev", "/proc", "/sys", "/tmp", "/etc"} {
		extra = append(extra, opsfs.Entry{Path: d, Kind: opsfs.KindDir})
	}
	for _, e := range extra {
		if err := t.Add(e); err != nil {
			return nil, err
		}
	}
	return t.Entries(), nil
}

// reservedOps refuses a program's entry under /.ops, init's own.
func reservedOps(e *opsfs.Entry) error {
	if e.Path == "/.ops" || strings.HasPrefix(e.Path, "/.ops/") {
		return fmt.Errorf("%s: /.ops is reserved for ops in the Linux guest", e.Path)
	}
	return nil
}

// ownSerial is the serial of the disk that holds an image's own part.
const ownSerial = "ops-own"

// writeOverlay implements overlayWriter: the image's own part, a cpio
// archive of the manifest and the image's own files, into f; its shared
// part, the initramfs of init, the modules (the disk's driver among
// them), the shared files and a manifest naming the own part's disk
// (guestinit.Manifest.OwnSerial), kept in sh.Dir by its key and linked
// beside the image at out. The kernel unpacks the shared part; init
// unpacks the own part over it from its disk and reads the manifest it
// holds.
func (g *linuxGuest) writeOverlay(f *os.File, p *Plan, _ int64, sh *SharedParts, out string) error {
	k, err := g.kernelFor(p, true)
	if err != nil {
		return err
	}
	var shared []*opsfs.Entry
	own := opsfs.NewTree()
	for _, e := range p.Tree.Entries() {
		if err := reservedOps(e); err != nil {
			return err
		}
		if e.Kind == opsfs.KindFile && sh.own(e) {
			if err := own.Add(*e); err != nil {
				return err
			}
		} else {
			shared = append(shared, e)
		}
	}
	full := initManifest(p, k, false)
	baseMan, err := json.Marshal(guestinit.Manifest{Modules: full.Modules, LateModules: full.LateModules, SnapshotModules: full.SnapshotModules, OwnSerial: ownSerial})
	if err != nil {
		return err
	}
	man, err := json.Marshal(full)
	if err != nil {
		return err
	}
	if err := own.Add(opsfs.Entry{Path: manifestPath, Kind: opsfs.KindFile, Data: man}); err != nil {
		return err
	}
	h := sha256.New()
	fmt.Fprintf(h, "ops-base-1 %s\nmanifest %s\n", formatVersion, baseMan)
	if err := g.key(h, p); err != nil {
		return err
	}
	settled, err := opsfs.EntriesKey(h, shared, sh.clock())
	if err != nil {
		return err
	}
	_, err = sh.place(hex.EncodeToString(h.Sum(nil)[:16]), settled, out+baseSuffix, func(tmp *os.File) ([][32]byte, error) {
		ents, err := g.initramfs(shared, baseMan, k)
		if err != nil {
			return nil, err
		}
		return nil, opsfs.WriteCPIO(tmp, ents)
	})
	if err != nil {
		return err
	}
	if err := opsfs.WriteCPIO(f, own.Entries()); err != nil {
		return err
	}
	// A disk is whole sectors: zeros after the trailer fill the last.
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return f.Truncate((st.Size() + 511) &^ 511)
}

// planMounts counts the plan's volumes and its shares (their "%N"
// entries).
func planMounts(p *Plan) (volumes, shares int) {
	for name := range p.Mounts {
		if _, ok := shareTag(name); ok {
			shares++
		} else {
			volumes++
		}
	}
	return volumes, shares
}

// withDrivers is the kernel with the virtio block driver (disk) and the
// virtio-fs one (fs), and what they need, added to the modules init
// loads: volumes are disks, shares virtio-fs; a guest without them is
// spared loading their drivers.
func (g *linuxGuest) withDrivers(disk, fs bool) (*linuxkernel.Kernel, error) {
	k := *g.Kernel
	if k.ModDir == "" {
		return &k, nil
	}
	want := linuxkernel.GuestModulesFor(g.Arch())
	if disk {
		want = append(want, linuxkernel.DiskModule)
	}
	if fs {
		want = append(want, linuxkernel.FSModule)
	}
	more, err := linuxkernel.ModuleOrder(k.ModDir, want)
	if err != nil {
		return nil, err
	}
	k.Modules = more
	return &k, nil
}

// VM implements Guest. The Linux guest boots on microvm only (virt on
// arm64), its memory sized to the initramfs unless set. Under emulation
// QEMU runs without transparent huge pages (the guest touches ~90 MiB in
// small pieces while it boots: ~0.08 s sooner to hello), and an x86
// kernel is told the TSC's rate, which emulation runs at the host's. An
// arm64 machine has no exit device: init reports the exit code on the
// channel (guestinit.ExitChannelArg), and it boots cold (its snapshots
// are not made yet). Shared folders are virtio-fs devices, each served by
// a virtiofsd (qemu.FS) whose socket is in the boot's folder.
func (g *linuxGuest) VM(b Boot) (qemu.VM, error) {
	a := g.Arch()
	vm, err := baseVM(b, a)
	if err != nil {
		return vm, err
	}
	if want := qemu.DefaultMachine(a); vm.Machine != want {
		return vm, fmt.Errorf("the Linux guest boots on %s only", want)
	}
	vm.Kernel = g.Kernel.Image
	vm.Initrd = b.Image.Path
	vm.Drives = volumeDrives(b)
	size := b.Image.Size
	snapshot := a == arch.AMD64 && b.Snapshot && len(g.Kernel.SnapshotModules) > 0
	if b.Image.Base != "" {
		// A shared initramfs, and the image's own part on a disk
		// (writeOverlay), or on the channel past the snapshot point
		// (Machine sends it), so that one snapshot serves every image of
		// the base.
		st, err := os.Stat(b.Image.Base)
		if err != nil {
			return vm, goerrors.Wrap(err, 0)
		}
		vm.Initrd, size = b.Image.Base, size+st.Size()
		if !snapshot {
			vm.Drives = append(vm.Drives, qemu.Drive{File: b.Image.Path, ReadOnly: true, Serial: ownSerial})
		}
	}
	vm.FS = virtioFS(b.Shares, b.Scratch, os.Geteuid(), os.Getegid())
	if vm.MemoryMB == 0 {
		vm.MemoryMB = linuxMemoryMB(size)
	}
	khz := 0
	if b.Accel == qemu.TCG {
		vm.Pages = qemu.PagesSmall
		if a == arch.AMD64 {
			cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
			khz = qemu.TSCkHz(string(cpuinfo))
		}
	}
	vm.Append = linuxCommandLine(b.Run.Debug || b.Run.ShowDebug, khz, a)
	if a != arch.AMD64 {
		vm.Append += " " + guestinit.ExitChannelArg
		vm.Channel = guestinit.ChannelName
	} else {
		if snapshot {
			vm.Append += " " + guestinit.SnapshotArg
			vm.Channel = guestinit.ChannelName
		}
		if b.GiveBack {
			// The files given back come on the channel, with the code.
			vm.Append += " " + guestinit.ExitChannelArg
			vm.Channel = guestinit.ChannelName
		}
	}
	return vm, nil
}

// linuxMemoryMB sizes the Linux guest: the initramfs sits in memory twice
// while the kernel unpacks it, and the program needs room beyond that.
func linuxMemoryMB(imageBytes int64) int {
	mb := int(2*imageBytes>>20) + 192
	mb = (mb + 63) / 64 * 64
	return max(mb, 256)
}

// Initramfs paths of ops's own files, out of the program's way.
const (
	initPath     = "/.ops/init"
	manifestPath = "/.ops/manifest.json"
	modulesDir   = "/.ops/modules"
)

// skippedInitcalls are the kernel's boot-time set-up functions the Linux
// guest skips (initcall_blacklist; a name the kernel does not have is
// ignored). All three prepare function tracing and trace events, which a
// single-program guest has no use for: a pass over every traceable
// function's symbol (~40k lookups), the rewrite of enum names in every
// trace event's format, and the tracefs files of every event. Without them
// the guest reaches its program ~0.13 s sooner under emulation (paired
// runs: 37 of 40 faster for the first two, 34 of 40 for the third on top);
// /sys/kernel/tracing then has no event files, and that is all.
const skippedInitcalls = "ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs"

// linuxCommandLine is the guest kernel's command line. tscKHz, when known
// (software emulation runs the guest's TSC at the host's rate), spares the
// kernel calibrating against the PIT, which fails now and then under
// emulation and leaves the guest without a clock.
//
// The rest shortens the boot under emulation, where the kernel's own
// housekeeping dominates: cryptomgr.notests skips the crypto self-tests
// (~0.3 s), and noreplace-smp keeps the kernel from rewriting every lock
// prefix when it finds one CPU (thousands of text pokes, each a page-table
// switch: ~0.1 s). skippedInitcalls leaves out the kernel's tracing set-up.
//
// On arm64 the console is the PL011 and none of the x86 options apply;
// its kernel also skips the kprobe trace events' set-up.
func linuxCommandLine(debug bool, tscKHz int, a arch.Arch) string {
	s := "console=ttyS0 rdinit=" + initPath + " rootfstype=ramfs panic=-1 reboot=t 8250.nr_uarts=1 tsc=reliable no_timer_check cryptomgr.notests noreplace-smp" +
		" initcall_blacklist=" + skippedInitcalls
	if a == arch.ARM64 {
		s = "console=ttyAMA0 rdinit=" + initPath + " rootfstype=ramfs panic=-1 cryptomgr.notests" +
			" initcall_blacklist=" + skippedInitcalls + ",init_kprobe_trace"
	}
	if tscKHz > 0 {
		s += fmt.Sprintf(" tsc_early_khz=%d", tscKHz)
	}
	if debug {
		return s + " ops.debug=1"
	}
	return s + " quiet loglevel=1"
}

// initManifest turns a plan into what the guest init reads.
func initManifest(p *Plan, k *linuxkernel.Kernel, debug bool) guestinit.Manifest {
	m := guestinit.Manifest{
		Program: p.Program,
		Args:    p.Args,
		Cwd:     p.Cwd,
		Debug:   debug,
		Net: guestinit.Net{
			Address: "10.0.2.15/24",
			Gateway: "10.0.2.2",
			DNS:     []string{"10.0.2.3"},
		},
	}
	for _, e := range p.Env {
		m.Env = append(m.Env, e.Name+"="+e.Value)
	}
	m.GiveBack = p.GiveBack
	if p.Network.IP != "" {
		m.Net.Address = p.Network.IP + "/" + maskBits(p.Network.Netmask)
		m.Net.Gateway = p.Network.Gateway
	} else if p.Network.DHCP {
		m.Net = guestinit.Net{DHCP: true}
	}
	if len(p.Network.NameServers) > 0 {
		m.Net.DNS = p.Network.NameServers
	}
	for i, mod := range k.Modules {
		m.Modules = append(m.Modules, moduleFile("", i, mod))
	}
	for i, mod := range k.LateModules {
		m.LateModules = append(m.LateModules, moduleFile("late-", i, mod))
	}
	for i, mod := range k.SnapshotModules {
		m.SnapshotModules = append(m.SnapshotModules, moduleFile("snap-", i, mod))
	}
	for _, name := range sortedKeys(p.Mounts) {
		mp, ro := strings.CutSuffix(p.Mounts[name], ":ro")
		if tag, ok := shareTag(name); ok {
			m.Shares = append(m.Shares, guestinit.Share{Tag: tag, Path: mp, ReadOnly: ro})
			continue
		}
		m.Mounts = append(m.Mounts, guestinit.Mount{Label: name, Path: mp, ReadOnly: ro})
	}
	return m
}

// moduleFile is where the initramfs holds module number i of a list.
func moduleFile(prefix string, i int, mod string) string {
	return fmt.Sprintf("%s/%s%02d-%s", modulesDir, prefix, i, path.Base(mod))
}

func maskBits(mask string) string {
	if mask == "" {
		return "24"
	}
	var a, b, c, d uint32
	if _, err := fmt.Sscanf(mask, "%d.%d.%d.%d", &a, &b, &c, &d); err != nil {
		return "24"
	}
	v := a<<24 | b<<16 | c<<8 | d
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	return fmt.Sprint(n)
}
