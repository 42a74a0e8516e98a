package linuxkernel

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/internal/testutil"
)

// Fake kernel images: only the bytes ImageArch reads.

// bzImage is an x86 bzImage's start: MZ (its EFI stub), "HdrS" at 0x202.
func bzImage() string {
	b := make([]byte, 0x400)
	copy(b, "MZ")
	copy(b[0x202:], "HdrS")
	return string(b)
}

// arm64Image is an arm64 Image's header, as Debian's vmlinuz starts: MZ
// (its EFI stub), the magic at 56, then a PE header for arm64.
func arm64Image() string {
	b := make([]byte, 0x200)
	copy(b, "MZ")
	copy(b[56:], "ARM\x64")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x44:], 0xaa64)
	return string(b)
}

func gzipped(s string) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(s))
	zw.Close()
	return buf.String()
}

// noise is n bytes that do not compress.
func noise(n int) string {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// elfHeader is an ELF header's first 20 bytes for machine m.
func elfHeader(m uint16, bigEndian bool) string {
	b := make([]byte, 64)
	copy(b, "\x7fELF\x02\x01\x01")
	if bigEndian {
		b[5] = 2
		binary.BigEndian.PutUint16(b[18:], m)
	} else {
		binary.LittleEndian.PutUint16(b[18:], m)
	}
	return string(b)
}

// peImage is an EFI zboot image's start: MZ, "zimg", a PE header for
// machine m.
func peImage(m uint16) string {
	b := make([]byte, 0x100)
	copy(b, "MZ\x00\x00zimg")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], m)
	return string(b)
}

func TestImageArch(t *testing.T) {
	for _, tc := range []struct {
		name string
		head string
		want arch.Arch
		err  string // "" for none
	}{
		{"x86 bzImage", bzImage(), arch.AMD64, ""},
		{"arm64 Image", arm64Image(), arch.ARM64, ""},
		{"arm64 Image, gzip-compressed", gzipped(arm64Image()), arch.ARM64, ""},
		{"arm64 Image, gzip-compressed, cut short", gzipped(arm64Image() + noise(1<<16))[:1000], arch.ARM64, ""},
		{"x86-64 vmlinux", elfHeader(62, false), arch.AMD64, ""},
		{"arm64 vmlinux", elfHeader(183, false), arch.ARM64, ""},
		{"RISC-V vmlinux", elfHeader(243, false), "", "EM_RISCV"},
		{"big-endian s390x vmlinux", elfHeader(22, true), "", "EM_S390"},
		{"ELF cut short", "\x7fELF\x02\x01", "", "cut short"},
		{"EFI zboot image, arm64", peImage(0xaa64), arch.ARM64, ""},
		{"EFI zboot image, x86-64", peImage(0x8664), arch.AMD64, ""},
		{"EFI zboot image, RISC-V", peImage(0x5064), "", "0x5064"},
		{"MZ without a PE header", "MZ" + strings.Repeat("\x00", 0x100), "", "without a PE header"},
		{"gzip of something else", gzipped("hello, world"), "", "gzip-compressed: not a Linux kernel image"},
		{"gzip of a gzip (not unwrapped twice)", gzipped(gzipped(arm64Image())), "", "gzip-compressed: not a Linux kernel image"},
		{"a broken gzip header", "\x1f\x8b\x00", "", "gzip"},
		{"a text file", "k", "", "not a Linux kernel image"},
		{"empty", "", "", "not a Linux kernel image"},
	} {
		got, err := ImageArch([]byte(tc.head))
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s: %q, %v; want %s", tc.name, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %q, %v; want an error saying %q", tc.name, got, err, tc.err)
		}
	}
}

func FuzzImageArch(f *testing.F) {
	for _, s := range []string{bzImage(), arm64Image(), gzipped(arm64Image()), elfHeader(183, false), peImage(0x8664), "MZ"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ImageArch(b)
		if err == nil && a != arch.AMD64 && a != arch.ARM64 {
			t.Fatalf("%q: architecture %q", b, a)
		}
		if err != nil && a != "" {
			t.Fatalf("%q: architecture %q beside the error %v", b, a, err)
		}
	})
}

// modulesDep is a modules.dep as Debian's cloud kernels have it for the
// modules the guest loads (ext4 and, on arm64, the PL061 driver are built
// in: modules.builtin), plus one the guest does not load.
const modulesDep = `kernel/drivers/acpi/button.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/input/evdev.ko:
kernel/drivers/input/keyboard/gpio_keys.ko:
kernel/sound/soundcore.ko:
`

const modulesBuiltin = "kernel/fs/ext4/ext4.ko\nkernel/drivers/gpio/gpio-pl061.ko\n"

// kernelTree writes a kernel in the layout of an unpacked package (and of
// the host): boot/vmlinuz-<version> holding image, and, unless
// modules is false, lib/modules/<version>/modules.dep.
func kernelTree(t *testing.T, root, version, image string, modules bool) {
	t.Helper()
	testutil.WriteFile(t, filepath.Join(root, "boot", "vmlinuz-"+version), image)
	if modules {
		testutil.WriteFile(t, filepath.Join(root, "lib", "modules", version, "modules.dep"), modulesDep)
		testutil.WriteFile(t, filepath.Join(root, "lib", "modules", version, "modules.builtin"), modulesBuiltin)
	}
}

// names are the module names of paths, in their order.
func names(paths []string) string {
	var n []string
	for _, p := range paths {
		n = append(n, modName(p))
	}
	return strings.Join(n, " ")
}

func TestFindFor(t *testing.T) {
	root := t.TempDir()
	host := filepath.Join(root, "host") // the host's /boot and /lib/modules
	kernelTree(t, host, "6.1.0-9-cloud-amd64", bzImage(), true)
	kernelTree(t, host, "6.1.0-10-cloud-amd64", bzImage(), true)
	kernelTree(t, host, "6.12.0-1-amd64", bzImage(), false) // no modules
	kernelTree(t, host, "6.1.0-11-cloud-arm64", arm64Image(), true)
	deb := filepath.Join(root, "arm64") // dpkg-deb -x linux-image-…-cloud-arm64_….deb
	kernelTree(t, deb, "6.1.0-57-cloud-arm64", arm64Image(), true)
	kernelTree(t, deb, "6.1.0-56-cloud-arm64", arm64Image(), true)
	gz := filepath.Join(root, "gz") // as Ubuntu ships it
	kernelTree(t, gz, "6.8.0-31-generic", gzipped(arm64Image()), true)
	custom := filepath.Join(root, "custom") // a kernel with its drivers built in
	testutil.WriteFile(t, filepath.Join(custom, "Image"), arm64Image())
	testutil.WriteFile(t, filepath.Join(custom, "notes.txt"), "k")
	// Debian's arm64 cloud kernel: no gpio-keys driver (init watches the
	// GPIO line); another with the PL061 driver a module.
	debian := filepath.Join(root, "debian")
	kernelTree(t, debian, "6.1.0-57-cloud-arm64", arm64Image(), true)
	testutil.WriteFile(t, filepath.Join(debian, "lib/modules/6.1.0-57-cloud-arm64/modules.dep"), strings.Replace(modulesDep, "kernel/drivers/input/keyboard/gpio_keys.ko:\n", "", 1))
	pl061 := filepath.Join(root, "pl061")
	kernelTree(t, pl061, "6.1.0-57-cloud-arm64", arm64Image(), true)
	testutil.WriteFile(t, filepath.Join(pl061, "lib/modules/6.1.0-57-cloud-arm64/modules.dep"), modulesDep+"kernel/drivers/gpio/gpio-pl061.ko:\n")
	testutil.WriteFile(t, filepath.Join(pl061, "lib/modules/6.1.0-57-cloud-arm64/modules.builtin"), "kernel/fs/ext4/ext4.ko\n")
	empty := filepath.Join(root, "empty")
	testutil.WriteFile(t, filepath.Join(empty, "boot", "README"), "")

	const (
		amd64Modules = "virtio_ring virtio virtio_mmio failover net_failover virtio_net"
		arm64Modules = "virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
	)
	for _, tc := range []struct {
		name       string
		a          arch.Arch
		configured string
		root       string // FindInRoot(a, root) instead of FindFor over the host's folders
		// What is found: the image, its modules and late modules (names);
		// or the error, whole (notFound: errors.Is ErrNotFound too).
		image, modules, late, snap string
		err                        string
		notFound                   bool
	}{
		{name: "the host's newest amd64 kernel with modules", a: arch.AMD64,
			image: host + "/boot/vmlinuz-6.1.0-10-cloud-amd64", modules: amd64Modules, late: "button evdev", snap: "virtio_console"},
		{name: "the host's arm64 kernel, beside its amd64 ones", a: arch.ARM64,
			image: host + "/boot/vmlinuz-6.1.0-11-cloud-arm64", modules: arm64Modules, late: "gpio_keys evdev", snap: "virtio_console"},
		{name: "an unpacked arm64 package: its newest", a: arch.ARM64, root: deb,
			image: deb + "/boot/vmlinuz-6.1.0-57-cloud-arm64", modules: arm64Modules, late: "gpio_keys evdev", snap: "virtio_console"},
		{name: "arm64 without the gpio-keys driver: no late modules", a: arch.ARM64, root: debian,
			image: debian + "/boot/vmlinuz-6.1.0-57-cloud-arm64", modules: arm64Modules, late: "", snap: "virtio_console"},
		{name: "arm64 with the PL061 driver a module", a: arch.ARM64, root: pl061,
			image: pl061 + "/boot/vmlinuz-6.1.0-57-cloud-arm64", modules: arm64Modules, late: "gpio_pl061 gpio_keys evdev", snap: "virtio_console"},
		{name: "a gzip-compressed arm64 vmlinuz", a: arch.ARM64, root: gz,
			image: gz + "/boot/vmlinuz-6.8.0-31-generic", modules: arm64Modules, late: "gpio_keys evdev", snap: "virtio_console"},
		{name: "an unpacked package named in LinuxKernel", a: arch.ARM64, configured: deb,
			image: deb + "/boot/vmlinuz-6.1.0-57-cloud-arm64", modules: arm64Modules, late: "gpio_keys evdev", snap: "virtio_console"},
		{name: "LinuxKernel names a kernel in an unpacked package: its modules beside it", a: arch.ARM64, configured: deb + "/boot/vmlinuz-6.1.0-56-cloud-arm64",
			image: deb + "/boot/vmlinuz-6.1.0-56-cloud-arm64", modules: arm64Modules, late: "gpio_keys evdev", snap: "virtio_console"},
		{name: "LinuxKernel names the host's kernel: its modules in modDir", a: arch.AMD64, configured: host + "/boot/vmlinuz-6.1.0-9-cloud-amd64",
			image: host + "/boot/vmlinuz-6.1.0-9-cloud-amd64", modules: amd64Modules, late: "button evdev", snap: "virtio_console"},
		{name: "LinuxKernel names a kernel without modules", a: arch.ARM64, configured: custom + "/Image",
			image: custom + "/Image"},
		{name: "LinuxKernel names a kernel for another architecture", a: arch.AMD64, configured: deb + "/boot/vmlinuz-6.1.0-57-cloud-arm64",
			err: deb + "/boot/vmlinuz-6.1.0-57-cloud-arm64 is a kernel for arm64, not amd64 (the guest's architecture)"},
		{name: "LinuxKernel names no kernel", a: arch.ARM64, configured: custom + "/notes.txt",
			err: custom + "/notes.txt: not a Linux kernel image (neither an x86 bzImage, an arm64 Image nor an ELF vmlinux)"},
		{name: "LinuxKernel names nothing", a: arch.ARM64, configured: custom + "/nope",
			err: "LinuxKernel: stat " + custom + "/nope: no such file or directory"},
		{name: "an unpacked package of the other architecture", a: arch.AMD64, root: deb, notFound: true,
			err: "no amd64 Linux guest kernel found in " + deb + " (unpack Debian's kernel package there: dpkg-deb -x linux-image-…-cloud-amd64_….deb " + deb +
				"; or set LinuxKernel in config.json); " + deb + "/boot/vmlinuz-6.1.0-57-cloud-arm64 is a kernel for arm64, not amd64 (the guest's architecture)"},
		{name: "an empty folder", a: arch.ARM64, root: empty, notFound: true,
			err: "no arm64 Linux guest kernel found in " + empty + " (unpack Debian's kernel package there: dpkg-deb -x linux-image-…-cloud-arm64_….deb " + empty + "; or set LinuxKernel in config.json)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k *Kernel
			var err error
			if tc.root != "" {
				k, err = FindInRoot(tc.a, tc.root)
			} else {
				k, err = FindFor(tc.a, tc.configured, host+"/boot", host+"/lib/modules")
			}
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %+v, %v\nwant the error %s", k, err, tc.err)
				}
				if errors.Is(err, ErrNotFound) != tc.notFound {
					t.Errorf("errors.Is(err, ErrNotFound) = %v", !tc.notFound)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Arch != tc.a || k.Image != tc.image || k.Vmlinuz != tc.image {
				t.Errorf("%s kernel %s (%s), want %s", k.Arch, k.Image, k.Vmlinuz, tc.image)
			}
			if got := names(k.Modules); got != tc.modules {
				t.Errorf("modules %s\nwant %s", got, tc.modules)
			}
			if got := names(k.LateModules); got != tc.late {
				t.Errorf("late modules %s, want %s", got, tc.late)
			}
			if got := names(k.SnapshotModules); got != tc.snap {
				t.Errorf("snapshot modules %s, want %s", got, tc.snap)
			}
			if tc.modules != "" && filepath.Base(k.ModDir) != k.Version {
				t.Errorf("modules from %s for version %s", k.ModDir, k.Version)
			}
		})
	}
}

// TestFindHost: Find is FindFor the host's architecture, and a host
// without a kernel is ErrNotFound itself (its message unchanged).
func TestFindHost(t *testing.T) {
	boot, mods := t.TempDir(), t.TempDir()
	if _, err := Find("", boot, mods); err != ErrNotFound {
		t.Fatalf("empty: %v", err)
	}
	if arch.Host() == arch.AMD64 && ErrNotFound.Error() != "no Linux guest kernel found (install one with 'make deps', or apt-get install linux-image-cloud-amd64, or set LinuxKernel in config.json)" {
		t.Errorf("ErrNotFound says %q", ErrNotFound)
	}
	img := bzImage()
	if arch.Host() == arch.ARM64 {
		img = arm64Image()
	}
	testutil.WriteFile(t, filepath.Join(boot, "vmlinuz-6.1.0-10-cloud"), img)
	testutil.WriteFile(t, filepath.Join(mods, "6.1.0-10-cloud", "modules.dep"), modulesDep)
	k, err := Find("", boot, mods)
	if err != nil || k.Arch != arch.Host() || k.Version != "6.1.0-10-cloud" {
		t.Fatalf("%+v, %v", k, err)
	}
}

// TestGuestModulesFor: each architecture's transport and network card;
// GuestModules stays amd64's, which the host side of today asks for.
func TestGuestModulesFor(t *testing.T) {
	for a, want := range map[arch.Arch]string{
		arch.AMD64: "virtio_mmio virtio_net",
		arch.ARM64: "virtio_pci virtio_net",
	} {
		if got := strings.Join(GuestModulesFor(a), " "); got != want {
			t.Errorf("%s: %s, want %s", a, got, want)
		}
	}
	if got := strings.Join(GuestModules(), " "); got != "virtio_mmio virtio_net" {
		t.Errorf("GuestModules() = %s", got)
	}
}

// TestPrepareBootARM64: QEMU boots an arm64 Image as it is; nothing is
// read or cached.
func TestPrepareBootARM64(t *testing.T) {
	root, cache := t.TempDir(), t.TempDir()
	kernelTree(t, root, "6.1.0-57-cloud-arm64", arm64Image(), true)
	k, err := FindInRoot(arch.ARM64, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := PrepareBoot(k, cache); err != nil || k.Image != k.Vmlinuz {
		t.Fatalf("boots %s, %v; want the vmlinuz", k.Image, err)
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 0 {
		t.Errorf("the cache holds %d entries", len(ents))
	}
}
