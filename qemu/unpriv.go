package qemu

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	goerrors "github.com/go-errors/errors"
	"golang.org/x/sys/unix"
)

// An unprivileged QEMU. When ops runs as root (a tap device needs it),
// QEMU runs as VM.RunAs instead: ops opens, as root, what QEMU could not
// open as that user (the disks, the tap device, the QMP socket in the ops
// home) and QEMU gets the descriptors, from 3 on: disks as fd sets
// (-add-fd, file=/dev/fdset/N), the tap as -netdev tap,fd=, the QMP
// socket, already listening, as a chardev. The kernel and initrd are read
// through /proc/self/fd/N, which needs no path to them (the ops home may
// sit in a folder the user cannot enter) but does need them readable by
// anyone, as ops writes images. Nothing else is opened for QEMU. The
// user also gets the group of /dev/kvm, so KVM keeps working. The
// privileges are dropped by the exec itself (real, effective and saved
// IDs, and groups), before QEMU's first instruction, so QEMU never holds
// root, and it still dies with ops (PR_SET_PDEATHSIG is set after the
// drop; QEMU's own -runas would clear it).

// passedFDs are the descriptors handed to an unprivileged QEMU: files[i]
// becomes descriptor 3+i.
type passedFDs struct {
	files    []*os.File
	drives   map[int][]int  // drive index -> descriptors of its fd set
	overlays map[int][]int  // drive index -> descriptors of its overlay's fd set
	paths    map[string]int // kernel or initrd path -> descriptor
	tapFD    int
	qmpFD    int
}

func (p *passedFDs) add(f *os.File) int {
	p.files = append(p.files, f)
	return 2 + len(p.files)
}

func (p *passedFDs) drive(i int) ([]int, bool) {
	if p == nil {
		return nil, false
	}
	fds, ok := p.drives[i]
	return fds, ok
}

func (p *passedFDs) overlay(i int) ([]int, bool) {
	if p == nil {
		return nil, false
	}
	fds, ok := p.overlays[i]
	return fds, ok
}

func (p *passedFDs) path(file string) string {
	if p == nil {
		return file
	}
	if fd, ok := p.paths[file]; ok {
		return "/proc/self/fd/" + strconv.Itoa(fd)
	}
	return file
}

func (p *passedFDs) tap() (int, bool) {
	if p == nil || p.tapFD == 0 {
		return 0, false
	}
	return p.tapFD, true
}

func (p *passedFDs) qmp() (int, bool) {
	if p == nil || p.qmpFD == 0 {
		return 0, false
	}
	return p.qmpFD, true
}

// close closes ops's copies once QEMU has its own.
func (p *passedFDs) close() {
	for _, f := range p.files {
		f.Close()
	}
}

// Unprivileged reports whether StartVM drops QEMU's privileges for vm.
func (vm VM) Unprivileged() bool {
	return vm.RunAs != "" && len(vm.Net.GuestFwd) == 0
}

// openForQEMU opens, as root, what an unprivileged QEMU needs for vm,
// after the files already passed (first: passt's socket), and records
// the descriptors in vm.
func openForQEMU(vm *VM, passed []*os.File) error {
	p := &passedFDs{drives: map[int][]int{}, overlays: map[int][]int{}, paths: map[string]int{}}
	for _, f := range passed {
		p.add(f)
	}
	vm.fds = p
	open := func(path string, flag int) (int, error) {
		f, err := os.OpenFile(path, flag|syscall.O_CLOEXEC, 0)
		if err != nil {
			return 0, goerrors.Errorf("opening %s for QEMU: %w", path, err)
		}
		return p.add(f), nil
	}
	for i, d := range vm.Drives {
		// QEMU takes from the set a descriptor whose access mode is the
		// one it would open with: read-only first (it probes that way),
		// then read-write for a disk the guest writes.
		flags := []int{os.O_RDONLY}
		if !d.ReadOnly && !d.Snapshot && d.Overlay == "" {
			flags = append(flags, os.O_RDWR)
		}
		for _, flag := range flags {
			fd, err := open(d.File, flag)
			if err != nil {
				return err
			}
			p.drives[i] = append(p.drives[i], fd)
		}
		if d.Overlay == "" {
			continue
		}
		for _, flag := range []int{os.O_RDONLY, os.O_RDWR} {
			fd, err := open(d.Overlay, flag)
			if err != nil {
				return err
			}
			p.overlays[i] = append(p.overlays[i], fd)
		}
	}
	for _, k := range []string{vm.Kernel, vm.Initrd} {
		if k == "" {
			continue
		}
		fd, err := open(k, os.O_RDONLY)
		if err != nil {
			return err
		}
		p.paths[k] = fd
	}
	if vm.Net.Mode == "tap" && vm.Net.Tap != "" {
		f, err := openTap(vm.Net.Tap)
		if err != nil {
			return err
		}
		p.tapFD = p.add(f)
	}
	if vm.QMP != "" && !strings.HasPrefix(vm.QMP, "tcp:") {
		os.Remove(vm.QMP)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: vm.QMP, Net: "unix"})
		if err != nil {
			return goerrors.Errorf("QMP socket %s: %w", vm.QMP, err)
		}
		l.SetUnlinkOnClose(false) // QEMU serves it; whoever made the path removes it
		f, err := l.File()
		l.Close()
		if err != nil {
			return goerrors.Wrap(err, 0)
		}
		p.qmpFD = p.add(f)
	}
	return nil
}

// openTap attaches to the tap device name (made beforehand) as QEMU
// would: no packet information, virtio-net headers.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, goerrors.Errorf("opening /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, goerrors.Errorf("attaching to tap %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tap-"+name), nil
}

// credential is who an unprivileged QEMU runs as: RunAs's IDs, and the
// group that may open /dev/kvm.
func credential(runAs string) (*syscall.Credential, error) {
	u, g, ok := strings.Cut(runAs, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("QEMU's user %q: want UID:GID", runAs)
	}
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	var st unix.Stat_t
	if unix.Stat("/dev/kvm", &st) == nil && st.Gid != 0 {
		c.Groups = append(c.Groups, st.Gid)
	}
	return c, nil
}
