package lepton

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/opsdev/ops/guestinit/bin"
	"github.com/opsdev/ops/linuxkernel"
	"github.com/opsdev/ops/qemu"
	"github.com/opsdev/ops/release"
	"github.com/opsdev/ops/volume"
)

// Guest is a guest kernel: what an image for it depends on, how the image
// is written and how QEMU boots it. Each guest lives in its own file
// (guest_nanos.go, guest_linux.go) and callers hold a Guest without asking
// which one it is: a third guest is a third file and a case in ChooseGuest.
type Guest interface {
	// Name is the guest as users write it (--guest, Guest in config.json).
	Name() string
	// imageFile is the file name of the image named name.
	imageFile(name string) string
	// key writes to h what the image depends on beyond the plan (kernel
	// files, the init program), so a change to any of them rebuilds it.
	key(h io.Writer, p *Plan) error
	// write writes the image of p; minRoot is BaseVolumeSz.
	write(f *os.File, p *Plan, minRoot int64) error
	// VM is the QEMU machine that boots a built image.
	VM(b Boot) (qemu.VM, error)
	// env is the guest's own variables in every program's environment.
	env() map[string]string
	// VolumeFormat is the filesystem of the volumes it mounts.
	VolumeFormat() volume.Format
}

// Boot is a built image and how it is to run.
type Boot struct {
	Image    *BuildResult
	Run      RunConfig
	Accel    qemu.Accel
	Writable bool           // boot the image itself (ops run -s), not a snapshot of it
	Mounts   []volume.Mount // volumes, attached as disks after the image, in order
}

// Guest names, as --guest and config.json take them.
const (
	guestNanos = "nanos"
	guestLinux = "linux"
)

// CheckGuestName accepts "" (choose for me) and the guests ops has.
func CheckGuestName(name string) error {
	switch name {
	case "", guestNanos, guestLinux:
		return nil
	}
	return fmt.Errorf("%q is not a guest; use %s or %s", name, guestNanos, guestLinux)
}

// VolumeFormatFor is the volume format of the guest named name ("" is
// the guest ChooseGuest would pick on this machine).
func VolumeFormatFor(home Home, name string) (volume.Format, error) {
	switch name {
	case guestNanos:
		return volume.TFS{}, nil
	case guestLinux:
		return volume.Ext4{}, nil
	case "":
		if _, err := home.Releases().Find(""); err == nil {
			return volume.TFS{}, nil
		}
		return volume.Ext4{}, nil
	}
	return nil, CheckGuestName(name)
}

// volumeDrives are a boot's volumes as QEMU disks.
func volumeDrives(b Boot) []qemu.Drive {
	var out []qemu.Drive
	for _, m := range b.Mounts {
		out = append(out, qemu.Drive{File: m.Volume.Path, ReadOnly: m.ReadOnly})
	}
	return out
}

// ChooseGuest picks the guest for c: the one c.Guest names, else Nanos
// when a release is installed (or Kernel and Boot are configured), else
// the Linux guest. note is the one line ops prints when it falls back.
func ChooseGuest(home Home, c *Config) (g Guest, note string, err error) {
	if err := CheckGuestName(c.Guest); err != nil {
		return nil, "", fmt.Errorf("Guest: %w", err)
	}
	switch c.Guest {
	case guestNanos:
		g, err := nanosFor(home, c)
		if err != nil {
			return nil, "", fmt.Errorf("%w; install one with 'ops update' (or 'ops update --from FILE' offline), or use --guest linux", err)
		}
		return g, "", nil
	case guestLinux:
		g, err := linuxFor(home, c)
		return g, "", err
	}
	g, nerr := nanosFor(home, c)
	if nerr == nil {
		return g, "", nil
	}
	if !errors.Is(nerr, release.ErrNotInstalled) {
		return nil, "", nerr
	}
	lg, err := linuxFor(home, c)
	if errors.Is(err, linuxkernel.ErrNotFound) {
		return nil, "", errors.New("no guest kernel: no Nanos release is installed (run 'ops update', or 'ops update --from FILE' offline) and no Linux kernel was found for the Linux guest (run 'make deps' or apt-get install linux-image-cloud-amd64)")
	}
	if err != nil {
		return nil, "", err
	}
	return lg, fmt.Sprintf("guest: linux %s (no Nanos release installed; run 'ops update')", lg.Kernel.Version), nil
}

// nanosFor is the Nanos guest with the installed release's files, each
// replaced by Kernel, Boot or KlibDir from config.json when set.
func nanosFor(home Home, c *Config) (*nanosGuest, error) {
	k := nanosKernel{Kernel: c.Kernel, Boot: c.Boot, KlibDir: c.KlibDir}
	memo := ""
	if c.Kernel == "" || c.Boot == "" {
		rel, err := home.Releases().Find(c.NanosVersion)
		if err != nil {
			return nil, err
		}
		k = nanosKernel{Kernel: rel.Kernel, Boot: rel.Boot, KlibDir: rel.KlibDir, Version: rel.Version}
		if c.Kernel == "" {
			memo = rel.Dir // the boot filesystem is the release's
		}
		for _, o := range []struct {
			dst *string
			v   string
		}{{&k.Kernel, c.Kernel}, {&k.Boot, c.Boot}, {&k.KlibDir, c.KlibDir}} {
			if o.v != "" {
				*o.dst = o.v
			}
		}
	}
	g := &nanosGuest{Kernel: k, Memo: memo}
	if c.Uefi {
		var err error
		if g.UEFI, err = uefiLoader(home, c); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// linuxFor is the Linux guest with the host's kernel (unpacked once into
// the ops home) and ops's embedded init.
func linuxFor(home Home, c *Config) (*linuxGuest, error) {
	if c.Uefi {
		return nil, errLinuxUEFI
	}
	if o := c.nanosOnly(); len(o) > 0 {
		return nil, fmt.Errorf("%s: only the Nanos kernel reads these; the Linux guest has no such options (use --guest nanos)", strings.Join(o, ", "))
	}
	k, err := linuxkernel.Find(c.LinuxKernel, "/boot", "/lib/modules")
	if err != nil {
		return nil, err
	}
	if err := linuxkernel.PrepareBoot(k, home.linuxKernelCache()); err != nil {
		return nil, err
	}
	init, err := bin.Init()
	if err != nil {
		return nil, err
	}
	return &linuxGuest{Kernel: k, Init: init}, nil
}

// UsesTap reports whether the VM's network card is a tap device.
func (rc RunConfig) UsesTap() bool { return rc.Bridged || rc.TapName != "" }

// Net is the VM's network: a tap device when asked for, else a user-mode
// network with the port forwards: passt's, which keeps the guest off the
// host's loopback (without passt, QEMU's restricted to the forwards), or,
// with HostLoopback, QEMU's own, where 10.0.2.2 is the host's 127.0.0.1.
func (rc RunConfig) Net() (qemu.Net, error) {
	if rc.UsesTap() {
		if rc.TapName == "" {
			return qemu.Net{}, errors.New("bridged networking needs a tap device: pass --tapname")
		}
		return qemu.Net{Mode: "tap", Tap: rc.TapName}, nil
	}
	tcp, err := qemu.ParsePorts(rc.Ports, "tcp")
	if err != nil {
		return qemu.Net{}, err
	}
	udp, err := qemu.ParsePorts(rc.UDPPorts, "udp")
	if err != nil {
		return qemu.Net{}, err
	}
	n := qemu.Net{Mode: "user", Forwards: append(tcp, udp...)}
	if !rc.HostLoopback {
		n.Passt = qemu.PasstBinary()
		n.Restrict = n.Passt == ""
	}
	return n, nil
}

// NetNotes are the lines a user should read about the guest's user-mode
// network before it starts: what --host-loopback opens, or that without
// passt the guest has no network beyond its forwards.
func (rc RunConfig) NetNotes() []string {
	switch {
	case rc.UsesTap():
		return nil
	case rc.HostLoopback:
		return []string{"ops: --host-loopback: the guest reaches every service listening on this host's 127.0.0.1, at 10.0.2.2"}
	case qemu.PasstBinary() == "":
		return []string{"ops: passt is not installed, so the guest has no network beyond its port forwards " +
			"(apt-get install passt, or make deps; --host-loopback gives QEMU's own network, which also opens this host's 127.0.0.1 to the guest)"}
	}
	return nil
}

// MemoryMB is RunConfig.Memory in MiB, 0 when unset. A bare number means
// MiB, as QEMU reads -m.
func (rc RunConfig) MemoryMB() (int, error) {
	n, err := ParseSize(rc.Memory)
	if err != nil {
		return 0, fmt.Errorf("memory: %w", err)
	}
	if n < 1<<20 {
		n <<= 20
	}
	return int(n >> 20), nil
}

// qemuUser is who QEMU runs as once it has opened what needs root: ""
// (itself) unless ops runs as root; then the user who ran sudo, else
// nobody (65534:65534).
func qemuUser(euid int, getenv func(string) string) string {
	if euid != 0 {
		return ""
	}
	uid, gid := getenv("SUDO_UID"), getenv("SUDO_GID")
	if u, err := strconv.Atoi(uid); err == nil && u > 0 {
		if g, err := strconv.Atoi(gid); err == nil && g >= 0 {
			return uid + ":" + gid
		}
	}
	return "65534:65534"
}

// baseVM is what every guest's VM shares: machine, accelerator, CPUs,
// memory, the network and the exit device.
func baseVM(b Boot) (qemu.VM, error) {
	rc := b.Run
	vm := qemu.VM{Machine: rc.Machine, Accel: b.Accel, CPUs: rc.CPUs, DebugExit: true, GdbPort: rc.GdbPort,
		Sandbox: rc.Sandbox == nil || *rc.Sandbox, RunAs: qemuUser(os.Geteuid(), os.Getenv)}
	rc.DebugVM(&vm)
	if vm.Machine == "" {
		vm.Machine = qemu.MicroVM
	}
	var err error
	if vm.MemoryMB, err = rc.MemoryMB(); err != nil {
		return vm, err
	}
	vm.Net, err = rc.Net()
	return vm, err
}
