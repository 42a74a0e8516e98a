//go:build linux && (amd64 || arm64)

// Command init is PID 1 of the Linux guest: it prepares a minimal system,
// runs the one program named in /.ops/manifest.json, and reports the
// program's exit code to the host: on the channel when the kernel command
// line says so (guestinit.ExitChannelArg), else through QEMU's
// isa-debug-exit device (amd64; an arm64 guest then just powers off).
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/opsdev/ops/guestinit"
	"github.com/opsdev/ops/netlink"
	"golang.org/x/sys/unix"
)

func main() {
	// With a single P, Go's scheduler monitor takes the P away from any
	// system call still running at its next check (it checks every 20 µs
	// while it finds work, and under emulation nearly every call of init's
	// is that slow: mounts, module loads, netlink), so it keeps waking and
	// handing the P around. With an idle P it leaves a call alone for
	// 10 ms and backs off. The guest reaches the program ~25 ms sooner
	// (55 of 80 paired runs faster).
	runtime.GOMAXPROCS(max(2, runtime.NumCPU()))
	start := time.Now()
	setupConsole()
	exit(run(start))
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "ops-init: "+format+"\n", a...)
}

// setupConsole mounts devtmpfs and points stdio at the console; the
// kernel could not open /dev/console before /dev existed.
func setupConsole() {
	_ = unix.Mount("devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755")
	// The console is the program's only output, also after it switches to
	// an unprivileged user (a server that drops to nobody and then opens
	// /dev/stderr); udev's links to the process's own descriptors too.
	_ = unix.Chmod("/dev/console", 0o666)
	for _, l := range [][2]string{{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}} {
		_ = unix.Symlink(l[0], l[1])
	}
	if fd, err := unix.Open("/dev/console", unix.O_RDWR, 0); err == nil {
		for i := 0; i < 3; i++ {
			_ = unix.Dup2(fd, i)
		}
		if fd > 2 {
			unix.Close(fd)
		}
	}
	// The program's output goes to the host as it was written: no \n to
	// \r\n translation, no echo of input.
	if t, err := unix.IoctlGetTermios(1, unix.TCGETS); err == nil {
		t.Oflag &^= unix.ONLCR
		t.Lflag &^= unix.ECHO
		_ = unix.IoctlSetTermios(1, unix.TCSETS, t)
	}
}

// ending is what exit needs from run: the program's exit code, whether
// volumes or shares were mounted (which exit must sync, and unmount the
// volumes), and how the host is to be told the code.
type ending struct {
	code    int
	volumes bool
	// channel: report the code on the channel (guestinit.ExitChannelArg).
	channel bool
	// channelModules are the channel's drivers, to load before reporting
	// on it; nil once the snapshot point loaded them.
	channelModules []string
	// channelUp: the host answered on the channel at the snapshot point,
	// so it reads the exit code there too, all of it, where isa-debug-exit
	// carries the low 7 bits (a code above 127 goes there).
	channelUp bool
	// debug, with start, times the report (ops.debug=1).
	debug bool
	start time.Time
	// giveBack are the files sent on the channel before the code
	// (guestinit.Manifest.GiveBack).
	giveBack []string
}

// run prepares the guest and runs the program.
func run(start time.Time) (end ending) {
	end.start = start
	for _, m := range []struct{ src, dst, typ, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, unix.MS_NOSUID|unix.MS_NODEV, m.data); err != nil {
			logf("mount %s: %v", m.dst, err)
		}
	}
	_ = os.MkdirAll("/dev/pts", 0o755)
	_ = unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "")
	_ = os.MkdirAll("/dev/shm", 0o1777)
	_ = unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")

	cmdline, _ := os.ReadFile("/proc/cmdline")
	end.channel = exitChannelOn(cmdline)
	m, err := readManifest()
	// A shared initramfs (an OCI container's base): this image's own
	// part, its manifest included, comes on the channel past the snapshot
	// point when there is one (ownLater), else from a disk of its own.
	ownLater := err == nil && m.OwnSerial != "" && snapshotOn(cmdline)
	if err == nil && m.OwnSerial != "" && !ownLater {
		for _, mod := range m.Modules {
			if err := loadModule(mod); err != nil {
				logf("loading module %s: %v", mod, err)
			}
		}
		if err = unpackOwn(m.OwnSerial); err == nil {
			m, err = readManifest()
		}
		if err == nil && debugOn(cmdline) {
			logf("own part unpacked after %v", time.Since(start))
		}
	}
	if err != nil {
		logf("%v", err)
		end.code = 126
		return end
	}
	end.channelModules = m.SnapshotModules
	if debugOn(cmdline) {
		m.Debug = true
	}
	end.debug = m.Debug
	if m.Debug {
		logf("manifest read after %v", time.Since(start))
	}
	for _, mod := range m.Modules {
		if err := loadModule(mod); err != nil {
			logf("loading module %s: %v", mod, err)
		}
		if m.Debug {
			logf("module %s loaded after %v", mod, time.Since(start))
		}
	}
	if m.Debug {
		logf("modules loaded after %v", time.Since(start))
	}
	// A static network is the image's own, the same in every run: it is
	// set up before the snapshot point, which spares each restored guest
	// that work. A leased address is this run's own: after.
	if !m.Net.DHCP && !ownLater {
		network(m, start)
	}
	if snapshotOn(cmdline) {
		// Everything before this point is the same in every run of the
		// image; the host may save the VM here and start later runs from
		// it. What differs from run to run comes after. The power
		// button's drivers, which a cold boot loads once the program
		// runs, are loaded here, once for every restored run.
		for _, mod := range m.LateModules {
			if err := loadModule(mod); err != nil {
				logf("loading module %s: %v", mod, err)
			}
		}
		m.LateModules = nil
		ready, err := snapshotPoint(m.SnapshotModules, ownLater)
		end.channelModules = nil // loaded, or loading them failed
		end.channelUp = err == nil
		if err != nil {
			logf("snapshot point: %v", err)
			if ready || ownLater {
				// This may be one of many copies of a saved guest: without
				// its own entropy and clock (and its own part), the
				// program must not run.
				end.code = 126
				return end
			}
		}
		if m.Debug {
			logf("past the snapshot point after %v (a restored guest counts from the first boot)", time.Since(start))
		}
		if ownLater {
			debug := m.Debug
			if m, err = readManifest(); err != nil {
				logf("%v", err)
				end.code = 126
				return end
			}
			m.Debug, m.LateModules = debug, nil
			if !m.Net.DHCP {
				network(m, start)
			}
		}
	}
	if err := mountVolumes(m.Mounts); err != nil {
		logf("volumes: %v", err)
		end.code, end.volumes = 126, true // some may be mounted
		return end
	}
	if err := mountShares(m.Shares); err != nil {
		logf("shared folders: %v", err)
		end.code, end.volumes = 126, true
		return end
	}
	if m.Net.DHCP {
		network(m, start)
	}
	if m.Debug {
		logf("starting %s after %v", m.Program, time.Since(start))
	}
	end.giveBack = m.GiveBack
	end.code, end.volumes = runProgram(m), len(m.Mounts) > 0 || len(m.Shares) > 0
	return end
}

// readManifest reads the manifest ops wrote into the initramfs.
func readManifest() (guestinit.Manifest, error) {
	var m guestinit.Manifest
	b, err := os.ReadFile(guestinit.ManifestPathInGuest)
	if err != nil {
		return m, fmt.Errorf("reading the manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("bad manifest: %w", err)
	}
	return m, nil
}

// unpackOwn unpacks the image's own part over the initramfs: the cpio
// archive that is the contents of the disk whose serial is serial (its
// device may appear a little after its driver loads).
func unpackOwn(serial string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ents, _ := os.ReadDir("/sys/block")
		for _, e := range ents {
			if b, err := os.ReadFile("/sys/block/" + e.Name() + "/serial"); err == nil && strings.TrimSpace(string(b)) == serial {
				dev := "/dev/" + e.Name()
				f, err := os.Open(dev)
				if err != nil {
					break // devtmpfs has no node for it yet
				}
				defer f.Close()
				if err := guestinit.UnpackCPIO(f, "/"); err != nil {
					return fmt.Errorf("the image's own part (%s): %w", dev, err)
				}
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no disk with serial %s holds the image's own part", serial)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// setMAC gives the link named name the hardware address mac, when it is
// there (a VM without a network card has none) and has another.
func setMAC(name, mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return err
	}
	if cur, err := readMAC(name); err != nil || bytes.Equal(cur, hw) {
		return nil
	}
	index, err := netlink.IfIndex(name)
	if err != nil {
		return nil
	}
	nl, err := netlink.Dial()
	if err != nil {
		return err
	}
	defer nl.Close()
	return nl.SetMAC(index, hw)
}

// network sets up eth0 and lo, resolv.conf and the host name.
func network(m guestinit.Manifest, start time.Time) {
	if err := setupNetwork(m.Net, func(step string) {
		if m.Debug {
			logf("network: %s after %v", step, time.Since(start))
		}
	}); err != nil {
		logf("network: %v", err)
	}
	if m.Debug {
		logf("network up after %v", time.Since(start))
	}
	writeResolvConf(m.Net.DNS)
	setHostname()
}

// debugOn says whether the kernel command line asks for init's timings
// (ops run -v puts ops.debug=1 there).
func debugOn(cmdline []byte) bool {
	return strings.Contains(string(cmdline), "ops.debug=1")
}

func loadModule(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = unix.FinitModule(fd, "", 0)
	if err == unix.EEXIST {
		return nil
	}
	return err
}

// runProgram starts the program, forwards signals to it, reaps every
// orphan (init's duty), and returns the program's exit code.
func runProgram(m guestinit.Manifest) int {
	cmd := exec.Command(m.Program)
	cmd.Args = m.Args
	if len(cmd.Args) == 0 {
		cmd.Args = []string{m.Program}
	}
	cmd.Env = m.Env
	cmd.Dir = m.Cwd
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	if err := cmd.Start(); err != nil {
		logf("cannot start %s: %v", m.Program, err)
		return 127
	}
	pid := cmd.Process.Pid
	go func() {
		for s := range sigs {
			_ = syscall.Kill(pid, s.(syscall.Signal))
		}
	}()
	go powerButton(m.LateModules, pid)
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			logf("wait: %v", err)
			return 126
		}
		if wpid != pid {
			continue
		}
		if code, ended := exitCode(ws); ended {
			if ws.Signaled() {
				logf("%s was killed by signal %d (%v)", m.Program, int(ws.Signal()), ws.Signal())
			}
			return code
		}
	}
}

// exitCode is the code init reports for the program's wait status: its
// exit status or, as QEMU's exit status carries 7 bits, the number of the
// signal that killed it, as Nanos does. ended is false for a status that
// is no end (a stop).
func exitCode(ws unix.WaitStatus) (code int, ended bool) {
	switch {
	case ws.Exited():
		return ws.ExitStatus(), true
	case ws.Signaled():
		return int(ws.Signal()), true
	}
	return 0, false
}

// powerButton loads the power button's drivers, then turns a press (from
// ops instance stop: ACPI's button on amd64; on arm64 virt the gpio-keys
// input device, or without its driver the key's GPIO line, gpiokey.go)
// into SIGTERM for the program, as Nanos does: the program ends as it
// would on a host shutting down, and init reports its exit code.
func powerButton(modules []string, pid int) {
	for _, mod := range modules {
		if err := loadModule(mod); err != nil {
			return
		}
	}
	dev := ""
	var line *os.File
	for i := 0; i < 100 && dev == "" && line == nil; i++ {
		ents, _ := os.ReadDir("/sys/class/input")
		for _, e := range ents {
			name, _ := os.ReadFile("/sys/class/input/" + e.Name() + "/device/name")
			if strings.HasPrefix(e.Name(), "event") && isPowerButton(string(name)) {
				dev = "/dev/input/" + e.Name()
			}
		}
		if dev == "" {
			// A kernel without the gpio-keys driver (Debian's arm64
			// cloud kernel): the key's GPIO line, read directly.
			line = gpioPowerKey()
		}
		if dev == "" && line == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if line != nil {
		watchGPIOKey(line, pid)
		return
	}
	f, err := os.Open(dev)
	if err != nil {
		return
	}
	defer f.Close()
	// struct input_event on x86-64 and arm64: a 16-byte time, then type,
	// code (u16 each) and value (s32).
	ev := make([]byte, 24)
	for {
		if _, err := io.ReadFull(f, ev); err != nil {
			return
		}
		if powerPressed(ev) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
}

// isPowerButton says whether an input device, by its name (sysfs's, a
// newline after it), is the power button: ACPI's (amd64), or the gpio-keys
// device QEMU's arm64 virt machine describes, whose one key is KEY_POWER.
func isPowerButton(name string) bool {
	switch strings.TrimSpace(name) {
	case "Power Button", "gpio-keys":
		return true
	}
	return false
}

// powerPressed says whether an input event is the power button going
// down.
func powerPressed(ev []byte) bool {
	typ, code, value := binary.LittleEndian.Uint16(ev[16:]), binary.LittleEndian.Uint16(ev[18:]), int32(binary.LittleEndian.Uint32(ev[20:]))
	return typ == 1 && code == 116 && value == 1 // EV_KEY, KEY_POWER, pressed
}

// exit reports the code to the host and powers off. Volumes are written
// out first: QEMU ends the moment the code arrives.
func exit(end ending) {
	_ = os.Stdout.Sync()
	if end.volumes {
		// Everything else lives in memory: ramfs, tmpfs.
		unix.Sync()
		unmountVolumes()
	}
	if !end.channel && !(end.channelUp && end.code > 127) {
		debugExit(end.code)
	} else if err := reportExit(end.code, end.giveBack, end.channelModules, func(step string) {
		if end.debug {
			logf("exit: %s after %v", step, time.Since(end.start))
		}
	}); err != nil {
		logf("reporting the exit code on the channel: %v", err)
		debugExit(end.code) // where there is an isa-debug-exit device
	} else if end.debug {
		logf("exit code %d acknowledged after %v", end.code, time.Since(end.start))
	}
	// No isa-debug-exit device, or the host has the code: power off (QEMU
	// then exits with status 0). The kernel says "reboot: Power down" on
	// the console as it does, at a level the console shows whatever its
	// loglevel unless that is 0: the guest's output ends with the
	// program's, as it does with isa-debug-exit.
	if !end.debug {
		_ = os.WriteFile("/proc/sys/kernel/printk", []byte("0"), 0)
	}
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	for {
		time.Sleep(time.Hour)
	}
}

// hasVirtioNet reports whether the virtio bus (dir, sysfs) has a network
// device, its ID 1; its drivers are loaded by now, and the bus lists
// what they found. A bus that cannot be read is taken to have one.
func hasVirtioNet(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/device")
		if err != nil || strings.TrimSpace(string(b)) == "0x0001" {
			return true
		}
	}
	return false
}

// setupNetwork brings up lo and, when present, eth0 with a static address
// and default route, over rtnetlink.
func setupNetwork(n guestinit.Net, trace func(string)) error {
	nl, err := netlink.Dial()
	if err != nil {
		return err
	}
	defer nl.Close()
	if lo, err := netlink.IfIndex("lo"); err == nil {
		if err := nl.LinkUp(lo); err != nil {
			return fmt.Errorf("lo: %w", err)
		}
	}
	trace("lo up")
	if n.Address == "" && !n.DHCP {
		return nil
	}
	if !hasVirtioNet("/sys/bus/virtio/devices") {
		// The VM has no network card (ops-runtime under --network none):
		// nothing to wait for.
		trace("no network card")
		return nil
	}
	eth := 0
	for i := 0; i < 200; i++ {
		if eth, err = netlink.IfIndex("eth0"); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if eth == 0 {
		return fmt.Errorf("no eth0")
	}
	trace("eth0 found")
	if n.DHCP {
		if err := nl.LinkUp(eth); err != nil {
			return fmt.Errorf("eth0 up: %w", err)
		}
		mac, err := readMAC("eth0")
		if err != nil {
			return err
		}
		lease, err := netlink.DHCP(eth, mac, 30*time.Second)
		if err != nil {
			return fmt.Errorf("eth0: %w", err)
		}
		trace("DHCP lease " + lease.Addr.String())
		n = withLease(n, lease)
		if len(lease.DNS) > 0 {
			writeResolvConf(n.DNS)
		}
	}
	pfx, gw, err := ethConfig(n)
	if err != nil {
		return err
	}
	if err := nl.AddAddr(eth, pfx.Addr().As4(), pfx.Bits()); err != nil {
		return fmt.Errorf("eth0 address: %w", err)
	}
	trace("eth0 address set")
	if !n.DHCP {
		if err := nl.LinkUp(eth); err != nil {
			return fmt.Errorf("eth0 up: %w", err)
		}
		// Tell the network this address is here: passt (and a bridge)
		// learns the guest's MAC from its first frame, and without one
		// a connection forwarded to the guest waits for it.
		if mac, err := readMAC("eth0"); err == nil {
			if err := netlink.Announce(eth, mac, pfx.Addr()); err != nil {
				trace("ARP announcement: " + err.Error())
			}
		}
	}
	trace("eth0 up")
	if gw.IsValid() {
		if err := nl.AddDefaultRoute(eth, gw.As4()); err != nil {
			return fmt.Errorf("default route: %w", err)
		}
	}
	return nil
}

// withLease is the network a DHCP lease gives: its address and gateway,
// and its name servers when it names any.
func withLease(n guestinit.Net, lease *netlink.Lease) guestinit.Net {
	n.Address, n.Gateway = lease.Addr.String(), lease.Gateway.String()
	if len(lease.DNS) > 0 {
		n.DNS = nil
		for _, d := range lease.DNS {
			n.DNS = append(n.DNS, d.String())
		}
	}
	return n
}

// ethConfig reads eth0's address, an IPv4 CIDR, and its gateway: invalid
// (no default route) unless an IPv4 address.
func ethConfig(n guestinit.Net) (pfx netip.Prefix, gw netip.Addr, err error) {
	pfx, err = netip.ParsePrefix(n.Address)
	if err != nil || !pfx.Addr().Is4() {
		return pfx, gw, fmt.Errorf("address %q is not an IPv4 CIDR", n.Address)
	}
	if g, err := netip.ParseAddr(n.Gateway); err == nil && g.Is4() {
		gw = g
	}
	return pfx, gw, nil
}

// mountVolumes mounts each volume on its path: the virtio disk whose ext4
// filesystem carries the volume's label. Disks may appear a little after
// their driver loads.
func mountVolumes(mounts []guestinit.Mount) error {
	if len(mounts) == 0 {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, mt := range mounts {
		dev := ""
		for dev == "" {
			dev = diskLabelled(mt.Label)
			if dev == "" {
				if time.Now().After(deadline) {
					return fmt.Errorf("no disk holds volume %s", mt.Label)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if err := os.MkdirAll(mt.Path, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(dev, mt.Path, "ext4", mountFlags(mt), ""); err != nil {
			return fmt.Errorf("mounting %s (%s) on %s: %w", mt.Label, dev, mt.Path, err)
		}
	}
	return nil
}

// mountShares mounts each host folder on its path, by its virtio-fs tag.
// A device may register its tag a little after its driver loads.
func mountShares(shares []guestinit.Share) error {
	deadline := time.Now().Add(5 * time.Second)
	for _, sh := range shares {
		if err := os.MkdirAll(sh.Path, 0o755); err != nil {
			return err
		}
		flags := mountFlags(guestinit.Mount{ReadOnly: sh.ReadOnly})
		for {
			err := unix.Mount(sh.Tag, sh.Path, "virtiofs", flags, "")
			if err == nil {
				break
			}
			// EINVAL: no device has the tag yet; ENODEV: no driver yet.
			if (err != unix.EINVAL && err != unix.ENODEV) || time.Now().After(deadline) {
				return fmt.Errorf("mounting the host folder tagged %q on %s (virtio-fs): %w", sh.Tag, sh.Path, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// mountFlags are a volume's mount flags: no access times, read-only when
// it says so.
func mountFlags(mt guestinit.Mount) uintptr {
	flags := uintptr(unix.MS_NOATIME)
	if mt.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	return flags
}

// unmountVolumes unmounts the volumes, which writes their superblocks
// whole (free space included) before QEMU ends.
func unmountVolumes() {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	for _, p := range volumeMounts(string(b)) {
		_ = unix.Unmount(p, 0)
	}
}

// volumeMounts are the mount points of the volumes in a mount table (as
// /proc/self/mounts lists it): the ext4 filesystems on virtio disks.
func volumeMounts(table string) []string {
	var paths []string
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[2] == "ext4" && strings.HasPrefix(f[0], "/dev/vd") {
			paths = append(paths, f[1])
		}
	}
	return paths
}

// diskLabelled finds the disk whose ext4 superblock names label: its
// first 16 bytes, all an ext4 label holds (mkfs.ext4 -L cuts a longer
// name, compose's <project>_<volume> for one).
func diskLabelled(label string) string {
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "vd") {
			continue
		}
		dev := "/dev/" + e.Name()
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		sb := make([]byte, 1024)
		n, _ := f.ReadAt(sb, 1024)
		f.Close()
		if labelled(sb[:n], label) {
			return dev
		}
	}
	return ""
}

// labelled says whether an ext4 superblock (as much of it as was read)
// carries label, or its first 16 bytes.
func labelled(sb []byte, label string) bool {
	if len(label) > 16 {
		label = label[:16]
	}
	// s_magic at 56, s_volume_name (16 bytes) at 120.
	if len(sb) < 136 || sb[56] != 0x53 || sb[57] != 0xEF {
		return false
	}
	return strings.TrimRight(string(sb[120:136]), "\x00") == label
}

// setHostname sets the kernel's host name from the image's /etc/hostname,
// as the Nanos kernel does, so both guests answer uname the same.
func setHostname() {
	b, err := os.ReadFile("/etc/hostname")
	if err != nil {
		return
	}
	if h := strings.TrimSpace(string(b)); h != "" {
		_ = unix.Sethostname([]byte(h))
	}
}

// writeResolvConf writes the name servers unless the image has its own
// /etc/resolv.conf.
func writeResolvConf(dns []string) {
	if _, err := os.Stat("/etc/resolv.conf"); !os.IsNotExist(err) || len(dns) == 0 {
		return
	}
	_ = os.MkdirAll("/etc", 0o755)
	_ = os.WriteFile("/etc/resolv.conf", []byte(resolvConf(dns)), 0o644)
}

// resolvConf is a resolv.conf naming the name servers dns.
func resolvConf(dns []string) string {
	var sb strings.Builder
	for _, d := range dns {
		fmt.Fprintf(&sb, "nameserver %s\n", d)
	}
	return sb.String()
}

// readMAC reads an interface's hardware address from sysfs.
func readMAC(name string) ([]byte, error) {
	b, err := os.ReadFile("/sys/class/net/" + name + "/address")
	if err != nil {
		return nil, err
	}
	return parseMAC(name, b)
}

// parseMAC reads a hardware address as sysfs writes it (52:54:00:12:34:56
// and a newline).
func parseMAC(name string, b []byte) ([]byte, error) {
	var mac [6]byte
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]); err != nil {
		return nil, fmt.Errorf("%s: bad address %q", name, b)
	}
	return mac[:], nil
}

// snapshotOn says whether the kernel command line asks init to stop at
// its snapshot point.
func snapshotOn(cmdline []byte) bool {
	return slices.Contains(strings.Fields(string(cmdline)), guestinit.SnapshotArg)
}

// snapshotPoint loads the channel's driver, tells the host init is ready
// and waits for this run's RunInfo, which it applies: the entropy first
// (before anything else reads randomness), then the clock. ready says
// whether the host was told: past that, the guest may be a restored copy.
func snapshotPoint(modules []string, own bool) (ready bool, err error) {
	for _, mod := range modules {
		if err := loadModule(mod); err != nil {
			return false, fmt.Errorf("loading %s: %w", mod, err)
		}
	}
	dev, err := findPort(guestinit.ChannelName, 2*time.Second)
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := f.WriteString(guestinit.SnapshotReady); err != nil {
		return false, err
	}
	r := bufio.NewReader(f)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return true, fmt.Errorf("reading the run's information: %w", err)
	}
	info, err := guestinit.ParseRunInfo(line)
	if err != nil {
		return true, fmt.Errorf("the run's information: %w", err)
	}
	if own {
		// The image's own part follows the line; the network card of a
		// restored guest has the saved guest's MAC until it is told its
		// own.
		if info.Own == 0 {
			return true, errors.New("the host sent no own part for this image")
		}
		lr := io.LimitReader(r, info.Own)
		if err := guestinit.UnpackCPIO(lr, "/"); err != nil {
			return true, fmt.Errorf("the image's own part: %w", err)
		}
		if _, err := io.Copy(io.Discard, lr); err != nil {
			return true, fmt.Errorf("the image's own part: %w", err)
		}
		if info.MAC != "" {
			if err := setMAC("eth0", info.MAC); err != nil {
				return true, fmt.Errorf("eth0's MAC: %w", err)
			}
		}
	}
	if err := addEntropy(info.Seed); err != nil {
		return true, fmt.Errorf("entropy: %w", err)
	}
	if info.Time > 0 {
		ts := unix.NsecToTimespec(info.Time)
		if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
			return true, fmt.Errorf("setting the clock: %w", err)
		}
	}
	return true, nil
}

// exitChannelOn says whether the kernel command line asks init to report
// the exit code on the channel.
func exitChannelOn(cmdline []byte) bool {
	return slices.Contains(strings.Fields(string(cmdline)), guestinit.ExitChannelArg)
}

// exitAckWait is how long init waits for the channel to take the exit
// line and for the host to acknowledge it.
const exitAckWait = 2 * time.Second

// reportExit writes the exit line on the channel (loading its drivers
// first) and waits for the host's acknowledgement: QEMU ends with the
// power-off, and a line still on its way would be lost.
func reportExit(code int, giveBack, modules []string, trace func(string)) error {
	trace("reporting")
	for _, mod := range modules {
		if err := loadModule(mod); err != nil {
			return fmt.Errorf("loading %s: %w", mod, err)
		}
	}
	trace("channel driver loaded")
	dev, err := findPort(guestinit.ChannelName, 2*time.Second)
	if err != nil {
		return err
	}
	trace("port found")
	// Non-blocking, polled: a port the host is not connected to blocks a
	// write for ever.
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	defer unix.Close(fd)
	out := append(giveBackRecords(giveBack), guestinit.ExitLine(code)...)
	// A second more for every MiB given back (the channel is slow under
	// emulation).
	return exchangeExit(fd, out, time.Now().Add(exitAckWait+time.Duration(len(out)>>20)*time.Second))
}

// giveBackRecords are the files to give back as the channel carries them
// (guestinit.FileLine and the bytes); a file that cannot be read, or is
// larger than guestinit.MaxGiveBack, is said and left out.
func giveBackRecords(paths []string) []byte {
	var b []byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err == nil && len(data) > guestinit.MaxGiveBack {
			err = fmt.Errorf("%d bytes, more than the %d given back", len(data), guestinit.MaxGiveBack)
		}
		if err != nil {
			logf("giving back %s: %v", p, err)
			continue
		}
		b = append(append(b, guestinit.FileLine(p, len(data))...), data...)
	}
	return b
}

// exchangeExit writes out (the files given back and the exit line) on
// fd, non-blocking, and reads until the host's acknowledgement, up to
// deadline.
func exchangeExit(fd int, out []byte, deadline time.Time) error {
	for line := out; len(line) > 0; {
		if err := waitFD(fd, unix.POLLOUT, deadline); err != nil {
			return fmt.Errorf("writing the exit line: %w", err)
		}
		n, err := unix.Write(fd, line)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("writing the exit line: %w", err)
		}
		line = line[n:]
	}
	var got []byte
	buf := make([]byte, 64)
	for {
		if err := waitFD(fd, unix.POLLIN, deadline); err != nil {
			return fmt.Errorf("waiting for the host's acknowledgement: %w", err)
		}
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting for the host's acknowledgement: %w", err)
		}
		if n == 0 {
			return errors.New("the host closed the channel before acknowledging the exit line")
		}
		var acked bool
		if acked, got = ackIn(append(got, buf[:n]...)); acked {
			return nil
		}
	}
}

// ackIn says whether what the host sent holds its acknowledgement (a
// whole line), and returns what to keep reading after: an unfinished
// line. Other lines are dropped.
func ackIn(b []byte) (acked bool, rest []byte) {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false, b
		}
		if string(b[:i+1]) == guestinit.ExitAck {
			return true, nil
		}
		b = b[i+1:]
	}
}

// waitFD waits until fd is ready for events (unix.POLLIN or POLLOUT), up
// to deadline.
func waitFD(fd int, events int16, deadline time.Time) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("timed out")
		}
		p := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(p, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		switch {
		case n == 0:
			continue // the deadline, checked above
		case p[0].Revents&events != 0:
			return nil
		case p[0].Revents&unix.POLLHUP != 0:
			return errors.New("the host is not connected")
		default:
			return fmt.Errorf("poll: events %#x", p[0].Revents)
		}
	}
}

// findPort is the device of the virtio-serial port named name, once its
// driver has made it.
func findPort(name string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		ents, _ := os.ReadDir("/sys/class/virtio-ports")
		for _, e := range ents {
			b, err := os.ReadFile("/sys/class/virtio-ports/" + e.Name() + "/name")
			if err == nil && strings.TrimSpace(string(b)) == name {
				dev := "/dev/" + e.Name()
				if _, err := os.Stat(dev); err == nil {
					return dev, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio-serial port %s", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// addEntropy adds seed to the kernel's entropy pool, credited in full,
// and makes the kernel reseed its random number generator from the pool
// at once (RNDRESEEDCRNG), so every reader after this gets bytes no other
// copy of the snapshot gets.
func addEntropy(seed []byte) error {
	if len(seed) == 0 {
		return errors.New("no seed")
	}
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info := randPoolInfo(seed)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0])))
	runtime.KeepAlive(info)
	if e != 0 {
		return fmt.Errorf("RNDADDENTROPY: %w", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDRESEEDCRNG, 0); e != 0 {
		return fmt.Errorf("RNDRESEEDCRNG: %w", e)
	}
	return nil
}

// randPoolInfo is struct rand_pool_info for seed: the entropy credited
// in bits, the buffer's size in bytes, then the buffer.
func randPoolInfo(seed []byte) []byte {
	b := make([]byte, 8+len(seed))
	binary.NativeEndian.PutUint32(b[0:], uint32(len(seed)*8))
	binary.NativeEndian.PutUint32(b[4:], uint32(len(seed)))
	copy(b[8:], seed)
	return b
}
