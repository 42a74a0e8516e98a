// Package linuxkernel is the Linux kernel the Linux guest boots, the
// host's or one unpacked from a distribution's package for another
// architecture: finding the kernel for the guest's architecture and the
// modules the guest loads, and unpacking an x86 bzImage once into the ELF
// vmlinux QEMU boots fastest.
package linuxkernel

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/packages"
)

// Kernel is a distribution's kernel, as the Linux guest boots it.
type Kernel struct {
	Arch    arch.Arch // the guest's architecture, which the image is built for
	Version string
	Image   string   // what QEMU boots: a vmlinux (PVH entry) or the vmlinuz
	Vmlinuz string   // the distribution's file
	Modules []string // host paths of the modules to load, in load order
	ModDir  string   // /lib/modules/<version>, "" for a kernel with its drivers built in
	// LateModules are loaded once the program runs: the power button's
	// (ACPI's on amd64, gpio-keys on arm64), so a stop request reaches
	// the program.
	LateModules []string
	// SnapshotModules are loaded at init's snapshot point when the run
	// asks for one: the virtio-serial port ops talks to init over, which
	// also carries the exit code when the kernel command line says so
	// (guestinit.ExitChannelArg; init then loads them before it exits).
	SnapshotModules []string
}

// GuestModules are the drivers the amd64 Linux guest needs on microvm: the
// virtio-mmio transport and the network card. Built-in drivers are skipped.
func GuestModules() []string { return GuestModulesFor(arch.AMD64) }

// GuestModulesFor are the drivers the Linux guest of architecture a
// needs: the virtio transport of its machine (virtio-mmio on amd64's
// microvm, PCI on arm64's virt) and the network card. Built-in drivers
// are skipped. Volumes need DiskModule as well, shares FSModule.
func GuestModulesFor(a arch.Arch) []string {
	if a == arch.ARM64 {
		return []string{"virtio_pci", "virtio_net"}
	}
	return []string{"virtio_mmio", "virtio_net"}
}

// DiskModule is the driver of the virtio disks volumes are.
const DiskModule = "virtio_blk"

// FSModule is the virtio-fs driver host folders are shared through
// (it needs fuse).
const FSModule = "virtiofs"

// powerButtonModules are the drivers of a's power button, in sets each
// loaded whole or not at all: ACPI's button and the input device init
// reads it from on amd64; on arm64, QEMU virt's GPIO controller (a PL061)
// and, where the kernel has them, the gpio-keys driver and the input
// device. Debian's arm64 cloud kernel has the PL061 built in and no
// gpio-keys: init then watches the power key's GPIO line itself.
func powerButtonModules(a arch.Arch) [][]string {
	if a == arch.ARM64 {
		return [][]string{{"gpio_pl061"}, {"gpio_keys", "evdev"}}
	}
	return [][]string{{"button", "evdev"}}
}

// channelModule is the driver of the virtio-serial port ops talks to
// init over.
const channelModule = "virtio_console"

// NotFoundError says no kernel for the guest's architecture was found;
// errors.Is takes every one for ErrNotFound.
type NotFoundError struct {
	Arch arch.Arch
	// Root is the unpacked kernel package looked in; "" for the host's
	// /boot.
	Root string
	// Other, when set, is a kernel found there for another architecture.
	Other *ArchError
}

func (e *NotFoundError) Error() string {
	var s string
	switch {
	case e.Root != "":
		s = fmt.Sprintf("no %s Linux guest kernel found in %s (unpack Debian's kernel package there: dpkg-deb -x linux-image-…-cloud-%s_….deb %s; or set LinuxKernel in config.json)", e.Arch, e.Root, e.Arch, e.Root)
	case e.Arch != arch.Host():
		s = fmt.Sprintf("no %s Linux guest kernel found (unpack Debian's kernel package into a folder, dpkg-deb -x linux-image-…-cloud-%s_….deb DIR, and set LinuxKernel in config.json to DIR)", e.Arch, e.Arch)
	default:
		s = fmt.Sprintf("no Linux guest kernel found (install one with 'make deps', or apt-get install linux-image-cloud-%s, or set LinuxKernel in config.json)", e.Arch)
	}
	if e.Other != nil {
		s += "; " + e.Other.Error()
	}
	return s
}

// Is makes every NotFoundError match ErrNotFound.
func (e *NotFoundError) Is(target error) bool {
	_, ok := target.(*NotFoundError)
	return ok
}

// ErrNotFound means no guest kernel for the host's architecture was found
// on the host. errors.Is(err, ErrNotFound) holds for every *NotFoundError.
var ErrNotFound error = &NotFoundError{Arch: arch.Host()}

// Find finds the guest kernel for guests of the host's architecture:
// FindFor(arch.Host(), ...).
func Find(configured, bootDir, modDir string) (*Kernel, error) {
	return FindFor(arch.Host(), configured, bootDir, modDir)
}

// FindFor finds the kernel for guests of architecture a: configured,
// else the newest bootDir/vmlinuz-* built for a that has its
// modDir/<version> folder (bootDir and modDir are "/boot" and
// "/lib/modules" for the host's kernel). configured is a kernel file,
// whose modules are those of its version in an unpacked package's
// layout beside it (ROOT/boot/vmlinuz-V, ROOT/lib/modules/V), else in
// modDir, else none (a kernel with its drivers built in); or an unpacked
// package's folder (FindInRoot). A configured kernel for another
// architecture is an *ArchError; no kernel at all a *NotFoundError.
func FindFor(a arch.Arch, configured, bootDir, modDir string) (*Kernel, error) {
	if configured == "" {
		return find(a, bootDir, modDir, "")
	}
	st, err := os.Stat(configured)
	if err != nil {
		return nil, fmt.Errorf("LinuxKernel: %w", err)
	}
	if st.IsDir() {
		return FindInRoot(a, configured)
	}
	if err := checkArch(configured, a); err != nil {
		return nil, err
	}
	ver := strings.TrimPrefix(filepath.Base(configured), "vmlinuz-")
	for _, md := range []string{
		filepath.Join(filepath.Dir(filepath.Dir(configured)), "lib", "modules", ver),
		filepath.Join(modDir, ver),
	} {
		if _, err := os.Stat(filepath.Join(md, "modules.dep")); err == nil {
			return withModules(a, configured, ver, md)
		}
	}
	// A custom kernel with its drivers built in needs no modules.
	return &Kernel{Arch: a, Version: ver, Image: configured, Vmlinuz: configured}, nil
}

// FindInRoot finds the kernel for guests of architecture a in root, a
// distribution's kernel package unpacked there (dpkg-deb -x
// linux-image-…-cloud-arm64_….deb ROOT): the newest root/boot/vmlinuz-*
// built for a with its root/lib/modules/<version>.
func FindInRoot(a arch.Arch, root string) (*Kernel, error) {
	return find(a, filepath.Join(root, "boot"), filepath.Join(root, "lib", "modules"), root)
}

// find is the newest bootDir/vmlinuz-* built for a with its modules in
// modDir; root names the unpacked package in the error when there is none.
func find(a arch.Arch, bootDir, modDir, root string) (*Kernel, error) {
	cands, _ := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
	sortVersionsDesc(cands)
	var other *ArchError
	for _, c := range cands {
		ver := strings.TrimPrefix(filepath.Base(c), "vmlinuz-")
		md := filepath.Join(modDir, ver)
		if _, err := os.Stat(filepath.Join(md, "modules.dep")); err != nil {
			continue
		}
		if err := checkArch(c, a); err != nil {
			if ae, ok := err.(*ArchError); ok && other == nil {
				other = ae
			}
			continue
		}
		return withModules(a, c, ver, md)
	}
	if root == "" && other == nil && a == arch.Host() {
		return nil, ErrNotFound
	}
	return nil, &NotFoundError{Arch: a, Root: root, Other: other}
}

// withModules is the kernel image p, version ver, with the modules the
// guest of architecture a loads from modDir.
func withModules(a arch.Arch, p, ver, modDir string) (*Kernel, error) {
	mods, err := ModuleOrder(modDir, GuestModulesFor(a))
	if err != nil {
		return nil, err
	}
	k := &Kernel{Arch: a, Version: ver, Image: p, Vmlinuz: p, Modules: mods, ModDir: modDir}
	// The power button's drivers, for ops instance stop: loaded after
	// the program has started, so they cost the boot nothing. A kernel
	// without them still boots; stop then ends the guest after -t.
	for _, set := range powerButtonModules(a) {
		k.LateModules = append(k.LateModules, moreModules(modDir, slices.Concat(mods, k.LateModules), set...)...)
	}
	// The channel's driver. Without it a run boots cold (and an arm64
	// guest cannot report its exit code).
	k.SnapshotModules = moreModules(modDir, mods, channelModule)
	return k, nil
}

// moreModules are the modules names need (in load order) beyond those
// loaded already; none when one of them is missing.
func moreModules(modDir string, loaded []string, names ...string) []string {
	all, err := ModuleOrder(modDir, names)
	if err != nil {
		return nil
	}
	var more []string
	for _, m := range all {
		if !slices.Contains(loaded, m) {
			more = append(more, m)
		}
	}
	return more
}

func sortVersionsDesc(p []string) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && packages.VersionLess(filepath.Base(p[j-1]), filepath.Base(p[j])); j-- {
			p[j-1], p[j] = p[j], p[j-1]
		}
	}
}

func modName(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		b = strings.TrimSuffix(b, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(b, ".ko"), "-", "_")
}

// ModuleOrder reads modules.dep and returns the host paths of want and
// their dependencies, each after everything it depends on.
func ModuleOrder(modDir string, want []string) ([]string, error) {
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	file := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n := modName(mod)
		file[n] = mod
		for _, d := range strings.Fields(rest) {
			deps[n] = append(deps[n], modName(d))
			if _, ok := file[modName(d)]; !ok {
				file[modName(d)] = d
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[modName(l)] = true
		}
	}
	var out []string
	done := map[string]bool{}
	var add func(n string, depth int) error
	add = func(n string, depth int) error {
		if done[n] || builtin[n] {
			return nil
		}
		if depth > 32 {
			return fmt.Errorf("module dependencies of %s loop", n)
		}
		rel, ok := file[n]
		if !ok {
			return fmt.Errorf("module %s is neither built into the kernel nor listed in %s/modules.dep", n, modDir)
		}
		ds := deps[n]
		for i := len(ds) - 1; i >= 0; i-- {
			if err := add(ds[i], depth+1); err != nil {
				return err
			}
		}
		done[n] = true
		out = append(out, filepath.Join(modDir, filepath.FromSlash(rel)))
		return nil
	}
	for _, w := range want {
		if err := add(modName(w), 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PrepareBoot makes the kernel QEMU boots fastest: the vmlinuz's payload
// decompressed once into an ELF vmlinux (booted through its PVH entry),
// cached in cacheDir/<version>. Payloads ops cannot decompress keep the
// vmlinuz, and so does an arm64 kernel: QEMU boots its Image as it is
// (and inflates a gzip-compressed one itself).
func PrepareBoot(k *Kernel, cacheDir string) error {
	if k.Arch == arch.ARM64 {
		return nil
	}
	st, err := os.Stat(k.Vmlinuz)
	if err != nil {
		return err
	}
	dir := filepath.Join(cacheDir, k.Version)
	out := filepath.Join(dir, "vmlinux")
	stamp := filepath.Join(dir, "vmlinuz.stamp")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == k.Vmlinuz+" "+fileutil.Stamp(st) {
		if _, err := os.Stat(out); err == nil {
			k.Image = out
			return nil
		}
	}
	b, err := os.ReadFile(k.Vmlinuz)
	if err != nil {
		return err
	}
	elfData, err := extractVmlinux(b)
	if err != nil {
		return nil // not something we can unpack: boot the vmlinuz as it is
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := fileutil.ClearStale(dir); err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(out, elfData, 0o644); err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(stamp, []byte(k.Vmlinuz+" "+fileutil.Stamp(st)), 0o644); err != nil {
		return err
	}
	k.Image = out
	return nil
}

// extractVmlinux returns the ELF kernel inside a bzImage whose payload is
// gzip or LZ4 (legacy frame) compressed.
func extractVmlinux(bz []byte) ([]byte, error) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" {
		if bytes.HasPrefix(bz, []byte("\x7fELF")) {
			return bz, nil
		}
		return nil, errors.New("not a bzImage")
	}
	setup := int(bz[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*512 + int(binary.LittleEndian.Uint32(bz[0x248:]))
	n := int(binary.LittleEndian.Uint32(bz[0x24c:]))
	if off < 0 || n <= 0 || off+n > len(bz) {
		return nil, errors.New("bzImage payload lies outside the file")
	}
	p := bz[off : off+n]
	var out []byte
	var err error
	switch {
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(p)); err == nil {
			out, err = io.ReadAll(io.LimitReader(zr, 1<<30))
		}
	case bytes.HasPrefix(p, []byte{0x02, 0x21, 0x4c, 0x18}):
		out, err = lz4Legacy(p)
	default:
		return nil, errors.New("bzImage payload compression not supported")
	}
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(out, []byte("\x7fELF")) {
		return nil, errors.New("bzImage payload is not an ELF")
	}
	return out, nil
}

// lz4Legacy decodes the LZ4 legacy frame the kernel uses: a magic number,
// then blocks each prefixed by its compressed size; the kernel appends the
// uncompressed size after the last block.
func lz4Legacy(p []byte) ([]byte, error) {
	const magic = 0x184c2102
	var out []byte
	i := 0
	for len(p)-i >= 4 {
		size := int(binary.LittleEndian.Uint32(p[i:]))
		i += 4
		if size == magic {
			continue
		}
		if size > len(p)-i {
			break // the trailing uncompressed-size field
		}
		var err error
		if out, err = lz4Block(out, p[i:i+size]); err != nil {
			return nil, err
		}
		i += size
	}
	return out, nil
}

func lz4Block(out, b []byte) ([]byte, error) {
	i := 0
	readLen := func(n int) (int, error) {
		if n != 15 {
			return n, nil
		}
		for {
			if i >= len(b) {
				return 0, errors.New("lz4: truncated length")
			}
			c := int(b[i])
			i++
			n += c
			if n > 1<<30 {
				return 0, errors.New("lz4: length too large")
			}
			if c != 255 {
				return n, nil
			}
		}
	}
	for i < len(b) {
		tok := b[i]
		i++
		lit, err := readLen(int(tok >> 4))
		if err != nil {
			return nil, err
		}
		if lit > len(b)-i {
			return nil, errors.New("lz4: literals overrun the block")
		}
		out = append(out, b[i:i+lit]...)
		i += lit
		if i == len(b) {
			break
		}
		if len(b)-i < 2 {
			return nil, errors.New("lz4: truncated offset")
		}
		off := int(binary.LittleEndian.Uint16(b[i:]))
		i += 2
		ml, err := readLen(int(tok & 15))
		if err != nil {
			return nil, err
		}
		ml += 4
		if off == 0 || off > len(out) {
			return nil, errors.New("lz4: bad match offset")
		}
		start := len(out) - off
		for k := 0; k < ml; k++ {
			out = append(out, out[start+k])
		}
	}
	return out, nil
}
