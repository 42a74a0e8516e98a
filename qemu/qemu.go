package qemu

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/opsdev/ops/arch"
)

// Accel is the accelerator QEMU uses.
type Accel string

// Accelerators.
const (
	KVM Accel = "kvm"
	TCG Accel = "tcg"
)

// AccelProbe holds what the accelerator decision is made from, so it can
// be tested with fake inputs.
type AccelProbe struct {
	CPUInfo string       // /proc/cpuinfo
	OpenKVM func() error // opens /dev/kvm read-write
	Allow   bool         // false when the user asked for no acceleration
	// Host and Guest are the architectures of this machine and of the
	// guest: KVM runs a guest of the host's own only.
	Host, Guest arch.Arch
}

// HostProbe reads this machine.
func HostProbe(allow bool) AccelProbe {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return AccelProbe{CPUInfo: string(b), Allow: allow, Host: arch.Host(), Guest: arch.Host(), OpenKVM: func() error {
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}}
}

// DecideAccel picks KVM only where it really works: the guest is of the
// host's architecture, an x86 CPU advertises vmx or svm (nested
// hypervisors such as PVM expose /dev/kvm without them, and ordinary
// guests die there; arm64 CPUs advertise nothing of the kind), and
// /dev/kvm opens. It returns the reason for the choice.
func DecideAccel(p AccelProbe) (Accel, string) {
	if !p.Allow {
		return TCG, "acceleration turned off"
	}
	if p.Guest != "" && p.Host != "" && p.Guest != p.Host {
		return TCG, fmt.Sprintf("an %s guest on an %s host is emulated", p.Guest, p.Host)
	}
	if p.Host != arch.ARM64 && !hasVirtFlag(p.CPUInfo) {
		return TCG, "the CPU advertises neither vmx nor svm"
	}
	if p.OpenKVM == nil {
		return TCG, "no /dev/kvm"
	}
	if err := p.OpenKVM(); err != nil {
		return TCG, fmt.Sprintf("/dev/kvm cannot be opened: %v", err)
	}
	return KVM, "vmx/svm present and /dev/kvm opens"
}

func hasVirtFlag(cpuinfo string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, f := range strings.Fields(v) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

// MemoryOverhead is the memory QEMU needs beyond the guest's RAM: its
// translated-code buffer under emulation, device state and buffers.
const MemoryOverhead = 256 << 20

// Machine types ops boots.
const (
	MicroVM = "microvm" // x86: direct kernel boot, virtio-mmio devices
	Q35     = "q35"     // x86: BIOS boot of the whole disk, PCI devices
	Virt    = "virt"    // arm64: direct kernel boot (or UEFI firmware), PCI devices
)

// DefaultMachine is the machine type a guest of a boots on unless told.
func DefaultMachine(a arch.Arch) string {
	if a == arch.ARM64 {
		return Virt
	}
	return MicroVM
}

// Drive is a disk attached to the VM.
type Drive struct {
	File     string
	Format   string // QEMU's name for the image format; "" is raw
	Snapshot bool   // writes go to a temporary overlay; the file is left as it was
	ReadOnly bool   // the guest cannot write to it
	// Overlay, for a raw File, is an overlay ops made (CreateOverlay)
	// that takes the guest's writes in place of QEMU's temporary one, so
	// they can be read back once QEMU has exited.
	Overlay string
	// Image says the overlay is the disk image itself, File its base,
	// made with it (not a fresh CreateOverlay before each boot).
	Image bool
	// Serial is the disk's serial number, by which the guest finds it.
	Serial string
}

// Net is the VM's network card.
type Net struct {
	Mode     string // "user", "tap" or "none"
	Forwards []Forward
	Tap      string
	MAC      string
	GuestFwd []GuestFwd // user mode: guest connections to IP:port go to a host address
	// Passt, in user mode, is the passt binary that serves the network
	// (see passt.go): the guest cannot reach the host's loopback. Empty
	// means QEMU's own slirp, whose gateway address is the host's loopback.
	Passt string
	// Namespace, with Passt, is the control socket of the network
	// namespace passt runs in (a compose project's; see package netns):
	// its holder starts passt there, and Forwards are bound there.
	Namespace string
	// Restrict, in user mode through slirp, lets no connection out of the
	// guest but the forwards (restrict=on).
	Restrict bool
}

// Share is a host folder the guest mounts through virtio-9p, by Tag.
type Share struct {
	Path     string
	Tag      string
	ReadOnly bool
}

// GuestFwd runs Cmd on the host for each guest TCP connection to IP:Port,
// with the connection on its standard input and output.
type GuestFwd struct {
	IP   string
	Port int
	Cmd  string
}

// TCGCPUARM64 is the arm64 CPU model under software emulation: every
// feature QEMU emulates but pointer authentication and SVE. Emulating
// pointer authentication costs on every call and return of code built
// with it, as Debian's kernel is (even with QEMU's cheaper algorithm:
// the Linux guest boots ~0.35 s sooner without it); programs built with
// it run, its instructions being no-ops on a CPU without it.
const TCGCPUARM64 = "max,pauth=off,sve=off"

// TCGCPU is the x86 CPU model under software emulation: every feature QEMU
// emulates, except the fast-string ones. TCG runs `rep movsb`/`rep stosb`
// one byte per step, so a guest that believes them fast (ERMS, FSRM) copies
// and clears memory several times slower than with word-sized loops; the
// Linux guest's boot is ~75 ms shorter without them.
const TCGCPU = "max,erms=off,fsrm=off"

// Pages is how the host backs QEMU's memory. Under emulation it matters:
// the host zeroes each page when QEMU first touches it, and QEMU asks for
// transparent huge pages for guest RAM and for its buffer of translated
// code, so touching one byte of a 2 MiB region zeroes all of it.
type Pages int

const (
	// PagesDefault is QEMU's own choice: huge pages where the host allows.
	PagesDefault Pages = iota
	// PagesMemfdRAM backs guest RAM with a memfd, in 4 KiB pages; the code
	// buffer keeps huge pages. Nanos, which touches a little of many 2 MiB
	// regions while it sets up its heaps, boots ~12 ms sooner so.
	PagesMemfdRAM
	// PagesSmall turns transparent huge pages off for all of QEMU's memory
	// (see DisableHugePages). The Linux guest, whose kernel QEMU copies in
	// and which touches ~90 MiB while it boots, gets to hello and to its
	// first HTTP reply ~0.08 s sooner so; with guest RAM alone in a memfd
	// it gains less than half of that.
	PagesSmall
)

// VM is a QEMU invocation described by its parts.
type VM struct {
	Arch      arch.Arch // "" is amd64
	Binary    string    // "" is the Arch's qemu-system-*
	Machine   string
	Accel     Accel
	MemoryMB  int
	CPUs      int
	Kernel    string // direct kernel boot (microvm)
	Firmware  string // -bios: a UEFI firmware (OVMF) instead of SeaBIOS (q35)
	Initrd    string
	Append    string
	Drives    []Drive
	Shares    []Share
	FS        []FS // virtio-fs shares (virtiofs.go)
	Net       Net
	DebugExit bool
	RNG       bool
	// Pages is how the host backs QEMU's memory; see Pages.
	Pages   Pages
	QMP     string // unix socket path, or tcp:HOST:PORT
	GdbPort int
	// Sandbox turns on QEMU's seccomp filter: no obsolete system calls, no
	// setuid, no process spawning, no scheduler or resource control
	// changes. A guestfwd that runs a command per connection (compose's
	// ops proxy, on a project without a network namespace of its own)
	// needs QEMU to start it in a session of its own: such a VM may spawn
	// processes and call set*id (setsid), the rest denied.
	Sandbox bool
	// WaitDebugger stops the CPU at start until a debugger on the gdb
	// stub continues it.
	WaitDebugger bool
	// RunAs is "UID:GID" for QEMU to run as, for ops running as root:
	// StartVM opens what needs root (disks, the tap device, the QMP
	// socket) and hands QEMU the descriptors (see unpriv.go). Not with a
	// guestfwd command (compose without its namespace), whose
	// per-connection process must be able to run ops.
	RunAs string
	// fds are descriptors StartVM opened for an unprivileged QEMU, which
	// Args names in place of paths and devices.
	fds *passedFDs
	// Channel, when set, is the name of a virtio-serial port in the guest
	// (/sys/class/virtio-ports/*/name) whose other end StartVM hands back
	// (Process.Channel): the Linux guest's init says there when it reached
	// its snapshot point, and reads what each run needs (entropy, clock).
	Channel string
	// Incoming is a file of QEMU's migration stream (SaveState) that the VM
	// starts from instead of booting; StartVM opens it for QEMU.
	Incoming string
	// Reboot lets a guest reset restart it (no -no-reboot).
	Reboot bool
	Extra  []string
}

// Args returns the QEMU argv, binary first: the machine (accelerator,
// CPUs, memory, machine type, firmware and kernel), the drives, the
// network, the other devices, the control socket, the sandbox and the
// debugger's stub; the larger ones each made by a part of its own.
func (vm VM) Args() ([]string, error) {
	bin := vm.Binary
	if bin == "" {
		bin = vm.arch().QEMU()
	}
	a := []string{bin, "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio"}
	if !vm.Reboot {
		a = append(a, "-no-reboot")
	}
	a, devs, err := vm.machineArgs(a)
	if err != nil {
		return nil, err
	}
	if a, err = vm.driveArgs(a, devs); err != nil {
		return nil, err
	}
	if a, err = vm.shareArgs(a, devs); err != nil {
		return nil, err
	}
	if a, err = vm.fsArgs(a, devs); err != nil {
		return nil, err
	}
	if a, err = vm.netArgs(a, devs); err != nil {
		return nil, err
	}
	if vm.RNG {
		a = append(a, "-device", devs.rng)
	}
	if vm.DebugExit {
		if vm.arch() != arch.AMD64 {
			return nil, fmt.Errorf("isa-debug-exit is an x86 device; an %s machine has none", vm.arch())
		}
		a = append(a, "-device", "isa-debug-exit")
	}
	if vm.Channel != "" {
		if strings.ContainsAny(vm.Channel, ", ") {
			return nil, fmt.Errorf("channel name %q: no commas or spaces", vm.Channel)
		}
		a = append(a, "-device", devs.serial, "-chardev", fmt.Sprintf("socket,id=ops0,fd=%d", vm.channelFD()),
			"-device", "virtserialport,chardev=ops0,name="+vm.Channel)
	}
	if vm.Incoming != "" {
		a = append(a, "-incoming", fmt.Sprintf("fd:%d", vm.incomingFD()))
	}
	a = vm.qmpArgs(a)
	a = vm.sandboxArgs(a)
	if vm.GdbPort > 0 {
		a = append(a, "-gdb", fmt.Sprintf("tcp::%d", vm.GdbPort))
	}
	if vm.WaitDebugger {
		a = append(a, "-S")
	}
	return append(a, vm.Extra...), nil
}

// devices are the names of the machine type's block, network and RNG
// devices (blk is empty where disks hang off a SCSI controller).
type devices struct{ blk, nic, rng, serial, ninep, vhostFS string }

// machineArgs adds the accelerator and CPU model, memory and CPUs, the
// machine type, firmware, kernel, initrd and command line.
func (vm VM) machineArgs(a []string) ([]string, devices, error) {
	var devs devices
	mem := vm.MemoryMB
	if mem <= 0 {
		mem = 256
	}
	cpus := max(vm.CPUs, 1)
	switch vm.Accel {
	case KVM:
		a = append(a, "-accel", "kvm", "-cpu", "host")
	case TCG, "":
		accel := "tcg"
		if cpus > 1 {
			accel += ",thread=multi"
		}
		cpu := TCGCPU
		if vm.arch() == arch.ARM64 {
			cpu = TCGCPUARM64
		}
		a = append(a, "-accel", accel, "-cpu", cpu)
	default:
		return nil, devs, fmt.Errorf("unknown accelerator %q", vm.Accel)
	}
	a = append(a, "-m", strconv.Itoa(mem)+"M", "-smp", strconv.Itoa(cpus))
	switch {
	case len(vm.FS) > 0:
		// virtiofsd maps the guest's RAM (vhost-user).
		a = append(a, "-object", fmt.Sprintf("memory-backend-memfd,id=ram0,size=%dM,share=on", mem))
	case vm.Pages == PagesMemfdRAM:
		a = append(a, "-object", fmt.Sprintf("memory-backend-memfd,id=ram0,size=%dM", mem))
	}
	machine := vm.Machine
	if machine == "" {
		machine = DefaultMachine(vm.arch())
	}
	if (machine == Virt) != (vm.arch() == arch.ARM64) {
		return nil, devs, fmt.Errorf("an %s VM does not boot on the %s machine type (%s boots on %s)", vm.arch(), machine, vm.arch(), DefaultMachine(vm.arch()))
	}
	switch machine {
	case Virt:
		a = append(a, "-machine", "virt,"+vm.gic(cpus)+",highmem=off"+vm.ramBackend())
		devs = devices{blk: "virtio-blk-pci", nic: "virtio-net-pci", rng: "virtio-rng-pci", serial: "virtio-serial-pci", ninep: "virtio-9p-pci", vhostFS: "vhost-user-fs-pci"}
		if vm.Kernel == "" && vm.Firmware == "" {
			return nil, devs, fmt.Errorf("virt boots a kernel directly or through UEFI firmware; neither given")
		}
	case MicroVM:
		// ioapic2=off and modern virtio-mmio are what Nanos needs; the
		// Linux guest's kernel is happy with both.
		a = append(a, "-machine", "microvm,rtc=on,ioapic2=off"+vm.ramBackend(), "-global", "virtio-mmio.force-legacy=false")
		devs = devices{blk: "virtio-blk-device", nic: "virtio-net-device", rng: "virtio-rng-device", serial: "virtio-serial-device", ninep: "virtio-9p-device", vhostFS: "vhost-user-fs-device"}
		if vm.Kernel == "" {
			return nil, devs, fmt.Errorf("microvm boots a kernel directly; no kernel given")
		}
	case Q35:
		a = append(a, "-machine", "q35"+vm.ramBackend())
		devs = devices{nic: "virtio-net-pci", rng: "virtio-rng-pci", serial: "virtio-serial-pci", ninep: "virtio-9p-pci", vhostFS: "vhost-user-fs-pci"}
		if len(vm.Drives) > 0 {
			a = append(a, "-device", "virtio-scsi-pci,id=scsi0")
		}
	default:
		return nil, devs, fmt.Errorf("unknown machine type %q (use microvm or q35; virt for arm64)", vm.Machine)
	}
	if vm.Firmware != "" {
		if machine == MicroVM {
			return nil, devs, fmt.Errorf("firmware %s boots a q35 machine, not microvm", vm.Firmware)
		}
		a = append(a, "-bios", vm.Firmware)
	}
	if vm.Kernel != "" {
		a = append(a, "-kernel", vm.fds.path(vm.Kernel))
	}
	if vm.Initrd != "" {
		a = append(a, "-initrd", vm.fds.path(vm.Initrd))
	}
	if vm.Append != "" {
		a = append(a, "-append", vm.Append)
	}
	return a, devs, nil
}

// driveArgs adds each drive and its device.
func (vm VM) driveArgs(a []string, devs devices) ([]string, error) {
	for i, d := range vm.Drives {
		if strings.ContainsAny(d.File, ",") {
			return nil, fmt.Errorf("disk path %q contains a comma, which QEMU cannot take", d.File)
		}
		id := fmt.Sprintf("hd%d", i)
		format := d.Format
		if format == "" {
			format = "raw"
		}
		file := d.File
		if fds, ok := vm.fds.drive(i); ok {
			// An fd set: QEMU uses the descriptors, opened here as root.
			for _, fd := range fds {
				a = append(a, "-add-fd", fmt.Sprintf("fd=%d,set=%d", fd, i+1))
			}
			file = fmt.Sprintf("/dev/fdset/%d", i+1)
		}
		if d.Overlay != "" {
			a = append(a, vm.overlayArgs(i, id, file)...)
		} else {
			opt := fmt.Sprintf("if=none,id=%s,format=%s,file=%s", id, format, file)
			if d.ReadOnly {
				opt += ",readonly=on"
			}
			if d.Snapshot {
				opt += ",snapshot=on"
			}
			a = append(a, "-drive", opt)
		}
		dev := "scsi-hd,bus=scsi0.0,drive=" + id
		if devs.blk != "" {
			dev = devs.blk + ",drive=" + id
		}
		if d.Serial != "" {
			if strings.ContainsAny(d.Serial, ", ") {
				return nil, fmt.Errorf("disk serial %q: QEMU cannot take a comma", d.Serial)
			}
			dev += ",serial=" + d.Serial
		}
		a = append(a, "-device", dev)
	}
	return a, nil
}

// shareArgs adds each shared folder: a local fsdev QEMU reads and
// writes as itself (security_model=none: the guest's files are the
// folder's, owned as QEMU's user makes them), and its 9p device.
func (vm VM) shareArgs(a []string, devs devices) ([]string, error) {
	for i, s := range vm.Shares {
		if strings.ContainsAny(s.Path, ",") || strings.ContainsAny(s.Tag, ", ") {
			return nil, fmt.Errorf("shared folder %q (tag %q): QEMU cannot take a comma", s.Path, s.Tag)
		}
		fs := fmt.Sprintf("local,id=fs%d,path=%s,security_model=none,multidevs=remap", i, s.Path)
		if s.ReadOnly {
			fs += ",readonly=on"
		}
		a = append(a, "-fsdev", fs, "-device", fmt.Sprintf("%s,fsdev=fs%d,mount_tag=%s", devs.ninep, i, s.Tag))
	}
	return a, nil
}

// overlayArgs are the block nodes of drive i, whose guest writes go to
// its overlay: the raw file read-only as the qcow2 overlay's backing.
func (vm VM) overlayArgs(i int, id, file string) []string {
	ov := vm.Drives[i].Overlay
	if fds, ok := vm.fds.overlay(i); ok {
		var a []string
		for _, fd := range fds {
			a = append(a, "-add-fd", fmt.Sprintf("fd=%d,set=%d", fd, overlaySet(i)))
		}
		ov = fmt.Sprintf("/dev/fdset/%d", overlaySet(i))
		return append(a, vm.overlayNodes(id, file, ov)...)
	}
	return vm.overlayNodes(id, file, ov)
}

func (vm VM) overlayNodes(id, file, ov string) []string {
	return []string{
		"-blockdev", fmt.Sprintf("driver=file,node-name=%s-base-file,filename=%s,read-only=on", id, file),
		"-blockdev", fmt.Sprintf("driver=raw,node-name=%s-base,file=%s-base-file,read-only=on", id, id),
		"-blockdev", fmt.Sprintf("driver=file,node-name=%s-file,filename=%s", id, ov),
		"-blockdev", fmt.Sprintf("driver=qcow2,node-name=%s,file=%s-file,backing=%s-base", id, id, id),
	}
}

// overlaySet is the fd set of drive i's overlay, after the drives' own.
func overlaySet(i int) int { return 1001 + i }

// gic is the virt machine's interrupt controller, and highmem=off keeps
// the PCI window below 4 GiB, as Nanos's own Makefile boots it. Under
// emulation a GICv2: the Nanos kernel finds a GICv3's interrupt
// translation service (ITS) in ACPI tables only, which a kernel QEMU loads
// has none of, so it sends its MSIs to a GICv2 frame a GICv3 machine does
// not have and hangs; and without an ITS (its=off) virtio falls back to
// wired interrupts, under which Nanos's network stalls under load. A GICv2
// serves up to 8 CPUs; beyond them, and under KVM (a GICv3-only server has
// no GICv2 to offer), the host's or the best emulated GIC without an ITS.
func (vm VM) gic(cpus int) string {
	switch {
	case vm.Accel == KVM:
		return "gic-version=host,its=off"
	case cpus > 8:
		return "gic-version=max,its=off"
	}
	return "gic-version=2"
}

// arch is the VM's architecture, amd64 unless set.
func (vm VM) arch() arch.Arch { return vm.Arch.OrAMD64() }

// netArgs adds the network card and its backend: passt's socket, QEMU's
// own user-mode network with its forwards, or a tap device.
func (vm VM) netArgs(a []string, devs devices) ([]string, error) {
	switch vm.Net.Mode {
	case "", "none":
	case "user":
		if vm.Net.Passt != "" {
			if len(vm.Net.GuestFwd) > 0 {
				return nil, errors.New("guest forwards need QEMU's own user-mode network, not passt")
			}
			// QEMU's end of the socket pair with passt (StartVM).
			a = append(a, "-netdev", fmt.Sprintf("stream,id=n0,addr.type=fd,addr.str=%d", passtFD), "-device", nicArg(devs.nic, vm.Net.MAC))
			break
		}
		nd := "user,id=n0"
		if vm.Net.Restrict {
			nd += ",restrict=on"
		}
		for _, f := range vm.Net.Forwards {
			nd += fmt.Sprintf(",hostfwd=%s:%s:%d-:%d", f.Proto, f.HostIP, f.HostPort, f.GuestPort)
		}
		for _, g := range vm.Net.GuestFwd {
			if strings.Contains(g.Cmd, ",") {
				return nil, fmt.Errorf("guest forward command %q contains a comma, which QEMU cannot take", g.Cmd)
			}
			nd += fmt.Sprintf(",guestfwd=tcp:%s:%d-cmd:%s", g.IP, g.Port, g.Cmd)
		}
		a = append(a, "-netdev", nd, "-device", nicArg(devs.nic, vm.Net.MAC))
	case "tap":
		if vm.Net.Tap == "" {
			return nil, fmt.Errorf("tap networking needs a tap device name")
		}
		nd := "tap,id=n0,ifname=" + vm.Net.Tap + ",script=no,downscript=no"
		if fd, ok := vm.fds.tap(); ok {
			nd = fmt.Sprintf("tap,id=n0,fd=%d", fd)
		}
		a = append(a, "-netdev", nd, "-device", nicArg(devs.nic, vm.Net.MAC))
	default:
		return nil, fmt.Errorf("unknown network mode %q", vm.Net.Mode)
	}
	return a, nil
}

// qmpArgs adds the QMP control socket.
func (vm VM) qmpArgs(a []string) []string {
	if fd, ok := vm.fds.qmp(); ok {
		a = append(a, "-chardev", fmt.Sprintf("socket,id=qmp0,fd=%d,server=on,wait=off", fd), "-mon", "chardev=qmp0,mode=control")
	} else if vm.QMP != "" {
		addr := vm.QMP
		if !strings.HasPrefix(addr, "tcp:") {
			addr = "unix:" + addr
		}
		a = append(a, "-qmp", addr+",server=on,wait=off")
	}
	return a
}

// sandboxArgs adds QEMU's seccomp filter when asked for.
func (vm VM) sandboxArgs(a []string) []string {
	switch {
	case !vm.Sandbox:
	case len(vm.Net.GuestFwd) > 0:
		// The guestfwd command is a process QEMU starts per connection,
		// in a session of its own (setsid): spawning and set*id stay
		// allowed, for it; the rest is denied, for it too.
		a = append(a, "-sandbox", "on,obsolete=deny,resourcecontrol=deny")
	default:
		a = append(a, "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny")
	}
	return a
}

// QEMU's descriptors from 3 on are, in order: passt's end of its socket
// pair, the Channel's end, the Incoming file, the virtio-fs shares'
// connections (fsFD), then what an unprivileged QEMU gets (unpriv.go).
func (vm VM) usesPasst() bool { return vm.Net.Mode == "user" && vm.Net.Passt != "" }

func (vm VM) channelFD() int {
	if vm.usesPasst() {
		return passtFD + 1
	}
	return passtFD
}

func (vm VM) incomingFD() int {
	if vm.Channel != "" {
		return vm.channelFD() + 1
	}
	return vm.channelFD()
}

// ramBackend is the machine option naming the RAM backend, if any.
func (vm VM) ramBackend() string {
	if vm.Pages == PagesMemfdRAM || len(vm.FS) > 0 {
		return ",memory-backend=ram0"
	}
	return ""
}

func nicArg(dev, mac string) string {
	s := dev + ",netdev=n0"
	if mac != "" {
		s += ",mac=" + mac
	}
	return s
}

// TSCkHz reads the host CPU frequency from /proc/cpuinfo text. Under TCG
// the guest's TSC counts at the host's rate; a Linux guest told this rate
// (tsc_early_khz=) skips calibrating against the PIT, which fails now and
// then under emulation and leaves the guest without a clock.
func TSCkHz(cpuinfo string) int {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "cpu MHz" {
			continue
		}
		mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || mhz <= 0 {
			return 0
		}
		return int(mhz * 1000)
	}
	return 0
}

// ShellLine renders argv as one line a POSIX shell runs as the same
// command: arguments holding anything but plain characters are quoted.
func ShellLine(argv []string) string {
	var sb strings.Builder
	for i, a := range argv {
		if i > 0 {
			sb.WriteByte(' ')
		}
		plain := a != ""
		for _, r := range a {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=,./:@%+", r)) {
				plain = false
				break
			}
		}
		if plain {
			sb.WriteString(a)
		} else {
			sb.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		}
	}
	return sb.String()
}
