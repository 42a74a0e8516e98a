package lepton

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/qemu"
	"github.com/opsdev/ops/volume"
)

// Guest is a guest kernel: what an image for it depends on, how the image
// is written and how QEMU boots it, and everything else that differs
// between guests. Each guest lives in its own file (guest_nanos.go,
// guest_linux.go) and is one entry of guests(); callers hold a Guest
// without asking which one it is: a third guest is a third file and an
// entry in guests().
type Guest interface {
	// Name is the guest as users write it (--guest, Guest in config.json).
	Name() string
	// VM is the QEMU machine that boots a built image.
	VM(b Boot) (qemu.VM, error)
	// Arch is the architecture its images are for.
	Arch() arch.Arch
	// VolumeFormat is the filesystem of the volumes it mounts.
	VolumeFormat() volume.Format
	// ImageFormat names its image files in what ops build --json
	// lists: "raw" for a disk.
	ImageFormat() string

	// load is the guest ready to build c's image with, its kernel found;
	// named says the user asked for this guest by name.
	load(home Home, c *Config, named bool) (Guest, error)
	// installed reports whether the guest's kernel is there: a guest
	// that is not is passed over when none is named.
	installed(home Home) bool
	// absent reports whether err, from load, means the guest's kernel
	// is not installed; missing says so, with how to install it, and
	// fallback says why the next guest was chosen instead.
	absent(err error) bool
	missing(home Home, a arch.Arch) string
	fallback() string
	// chosen names the loaded guest in the line ops prints when it chose
	// it because those before it are missing.
	chosen() string
	// imageSuffix ends the file name of its images.
	imageSuffix() string
	// isImage reports whether an image file starting with head is one of
	// this guest's.
	isImage(head []byte) bool
	// imageArch is the architecture of its image starting with head.
	imageArch(head []byte) arch.Arch
	// exportable says why its image cannot be written in disk formats,
	// or nil when it can.
	exportable() error
	// key writes to h what the image depends on beyond the plan (kernel
	// files, the init program), so a change to any of them rebuilds it.
	key(h io.Writer, p *Plan) error
	// write writes the image of p; minRoot is BaseVolumeSz.
	write(f *os.File, p *Plan, minRoot int64) error
	// env is the guest's own variables in every program's environment.
	env() map[string]string
	// prepare readies what vm needs made before each start (the files
	// the guest reports its exit code in).
	prepare(vm qemu.VM) error
	// exitCode is the program's exit code once QEMU, started as vm, ended
	// with res.
	exitCode(vm qemu.VM, res *qemu.Result) (int, error)
}

// guests are the guests ops has, in the order it prefers them when none
// is named, each without its kernel (load finds it).
func guests() []Guest { return []Guest{&nanosGuest{}, &linuxGuest{}} }

// Boot is a built image and how it is to run.
type Boot struct {
	Image    *BuildResult
	Run      RunConfig
	Accel    qemu.Accel
	Writable bool // boot the image itself (ops run -s), not a snapshot of it
	// Snapshot asks the guest to stop at its snapshot point and talk to
	// ops over a channel (qemu.VM.Channel); a guest without one ignores it.
	Snapshot bool
	Mounts   []volume.Mount // volumes, attached as disks after the image, in order
	Shares   []Share        // host folders it mounts
	// Scratch is a folder of this boot's own, removed after it, for files
	// QEMU writes that ops reads back (a disk's overlay).
	Scratch string
	// GiveBack: the host takes the image's GiveBack files when the
	// program exits (Machine.GiveBack): the Linux guest sends them on
	// its channel.
	GiveBack bool
}

// guestNamed is the guest named name.
func guestNamed(name string) (Guest, error) {
	var names []string
	for _, g := range guests() {
		if g.Name() == name {
			return g, nil
		}
		names = append(names, g.Name())
	}
	return nil, fmt.Errorf("%q is not a guest; use %s", name, strings.Join(names, " or "))
}

// CheckGuestName accepts "" (choose for me) and the guests ops has.
func CheckGuestName(name string) error {
	if name == "" {
		return nil
	}
	_, err := guestNamed(name)
	return err
}

// VolumeGuest is the name of the guest that mounts volumes of format f.
func VolumeGuest(f volume.Format) string {
	for _, g := range guests() {
		if g.VolumeFormat().Name() == f.Name() {
			return g.Name()
		}
	}
	return f.Name()
}

// VolumeFormatFor is the volume format of the guest named name ("" is
// the first guest whose kernel is installed, else the last).
func VolumeFormatFor(home Home, name string) (volume.Format, error) {
	if name != "" {
		g, err := guestNamed(name)
		if err != nil {
			return nil, err
		}
		return g.VolumeFormat(), nil
	}
	gs := guests()
	for _, g := range gs[:len(gs)-1] {
		if g.installed(home) {
			return g.VolumeFormat(), nil
		}
	}
	return gs[len(gs)-1].VolumeFormat(), nil
}

// ImageName is the name of the image in file: its file name without the
// guest's suffix.
func ImageName(file string) string {
	base := filepath.Base(file)
	for _, g := range guests() {
		if n, ok := strings.CutSuffix(base, g.imageSuffix()); ok && g.imageSuffix() != "" {
			return n
		}
	}
	return base
}

// imageHead is how much of an image BuiltImage reads to tell its guest and
// architecture.
const imageHead = 4096

// BuiltImage finds a built image by name (any guest's image of that name
// in the ops home) or path, the guest it is for and its architecture;
// want, when not "", names the guest it must be for.
func (h Home) BuiltImage(nameOrPath, want string) (path string, g Guest, a arch.Arch, err error) {
	p, err := h.FindImage(nameOrPath)
	if err != nil {
		return "", nil, "", err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", nil, "", fmt.Errorf("no image %s (ops image list shows the built ones; an ELF path is built first)", nameOrPath)
	}
	defer f.Close()
	head := make([]byte, imageHead)
	n, _ := io.ReadFull(f, head)
	for _, g := range guests() {
		if !g.isImage(head[:n]) {
			continue
		}
		if want != "" && want != g.Name() {
			return "", nil, "", fmt.Errorf("%s is an image for the %s guest, not %s", p, g.Name(), want)
		}
		abs, err := filepath.Abs(p)
		return abs, g, g.imageArch(head[:n]), err
	}
	return "", nil, "", fmt.Errorf("%s is not an image ops builds (neither a disk nor an initramfs)", p)
}

// volumeDrives are a boot's volumes as QEMU disks.
func volumeDrives(b Boot) []qemu.Drive {
	var out []qemu.Drive
	for _, m := range b.Mounts {
		out = append(out, qemu.Drive{File: m.Volume.Path, ReadOnly: m.ReadOnly})
	}
	return out
}

// ChooseGuest picks the guest for c: the one c.Guest names, else the
// first of guests() whose kernel is installed (Nanos when a release is,
// or Kernel and Boot are configured; else the Linux guest). note is the
// one line ops prints when it falls back.
func ChooseGuest(home Home, c *Config) (g Guest, note string, err error) {
	a, err := c.Target()
	if err != nil {
		return nil, "", err
	}
	if c.Guest != "" {
		g, err := guestNamed(c.Guest)
		if err != nil {
			return nil, "", fmt.Errorf("Guest: %w", err)
		}
		g, err = g.load(home, c, true)
		return g, "", err
	}
	var missing, fallbacks []string
	for _, g := range guests() {
		lg, err := g.load(home, c, false)
		if err == nil {
			if len(fallbacks) > 0 {
				note = fmt.Sprintf("guest: %s (%s)", lg.chosen(), strings.Join(fallbacks, "; "))
			}
			return lg, note, nil
		}
		if !g.absent(err) {
			return nil, "", err
		}
		missing = append(missing, g.missing(home, a))
		fallbacks = append(fallbacks, g.fallback())
	}
	return nil, "", errors.New("no guest kernel: " + strings.Join(missing, " and "))
}

// usesTap reports whether the VM's network card is a tap device.
func (rc RunConfig) usesTap() bool { return rc.Bridged || rc.TapName != "" }

// Net is the VM's network: a tap device when asked for, else a user-mode
// network with the port forwards: passt's, which keeps the guest off the
// host's loopback (without passt, QEMU's restricted to the forwards), or,
// with HostLoopback, QEMU's own, where 10.0.2.2 is the host's 127.0.0.1.
func (rc RunConfig) Net() (qemu.Net, error) {
	if rc.usesTap() {
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
	case rc.usesTap():
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

// baseVM is what every guest's VM shares: architecture, machine,
// accelerator, CPUs, memory, the network and the exit device (x86 only).
func baseVM(b Boot, a arch.Arch) (qemu.VM, error) {
	rc := b.Run
	vm := qemu.VM{Arch: a, Machine: rc.Machine, Accel: b.Accel, CPUs: rc.CPUs, DebugExit: a == arch.AMD64, GdbPort: rc.GdbPort,
		Sandbox: rc.Sandbox == nil || *rc.Sandbox, RunAs: qemuUser(os.Geteuid(), os.Getenv)}
	rc.DebugVM(&vm)
	if vm.Machine == "" {
		vm.Machine = qemu.DefaultMachine(a)
	}
	var err error
	if vm.MemoryMB, err = rc.MemoryMB(); err != nil {
		return vm, err
	}
	vm.Net, err = rc.Net()
	return vm, err
}
