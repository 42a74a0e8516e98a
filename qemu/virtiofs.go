package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	goerrors "github.com/go-errors/errors"
	"golang.org/x/sys/unix"
)

// Host folders through virtio-fs. The Linux guest's kernel (Debian's
// cloud kernel) has no 9p but has virtio-fs: the guest speaks FUSE over a
// virtio device whose other end is virtiofsd, a process of its own beside
// QEMU, reached over vhost-user. One virtiofsd serves one folder.
//
// ops makes virtiofsd's listening socket itself (in the boot's scratch
// folder), hands it to virtiofsd (--fd), connects to it at once and gives
// QEMU the connected end as a descriptor: nothing waits for a socket to
// appear, and an unprivileged QEMU (RunAs) needs no access to the path.
// vhost-user needs the guest's RAM shared with virtiofsd: such a VM's RAM
// is a shared memfd. A vhost-user device cannot be migrated, so such a VM
// is never saved nor restored (the caller boots it cold).

// VirtiofsdPath is where Debian's QEMU (package qemu-system-common) puts
// the C virtiofsd.
const VirtiofsdPath = "/usr/lib/qemu/virtiofsd"

// FS is a host folder the guest mounts through virtio-fs, by Tag.
type FS struct {
	Source string // the host folder
	Tag    string
	// Socket is the path of virtiofsd's vhost-user socket, in a folder of
	// the boot's own; it exists only while StartVM connects QEMU's end.
	Socket string
	// Owner is "UID:GID" that virtiofsd acts as, the root of a user
	// namespace of its own mapped to that user alone; "" (or "0:0") is
	// root itself. See startVirtiofsd.
	Owner string
	// Binary is virtiofsd; "" is VirtiofsdPath.
	Binary string
}

// maxSocketPath is the longest path a unix socket's address holds.
const maxSocketPath = 107

// fsFD is the descriptor number QEMU gets virtio-fs share i's connection
// on: after passt's, the channel's and the saved state's.
func (vm VM) fsFD(i int) int {
	fd := vm.incomingFD()
	if vm.Incoming != "" {
		fd++
	}
	return fd + i
}

// fsArgs adds each virtio-fs share: a vhost-user chardev on the
// descriptor StartVM connected, and the device.
func (vm VM) fsArgs(a []string, devs devices) ([]string, error) {
	for i, s := range vm.FS {
		if s.Tag == "" || len(s.Tag) > 36 || strings.ContainsAny(s.Tag, ", ") {
			return nil, fmt.Errorf("virtio-fs tag %q (folder %s): 1 to 36 characters, no commas or spaces", s.Tag, s.Source)
		}
		a = append(a, "-chardev", fmt.Sprintf("socket,id=vfs%d,fd=%d", i, vm.fsFD(i)),
			"-device", fmt.Sprintf("%s,chardev=vfs%d,tag=%s", devs.vhostFS, i, s.Tag))
	}
	return a, nil
}

// virtiofsdArgs is virtiofsd's command line for s, its listening socket
// on descriptor 3: the folder, the default cache (the guest sees the
// host's changes, metadata after a second), the namespace sandbox, and,
// in a user namespace, the open-files limit left as it is (raising it
// past the hard limit needs the host's root).
func virtiofsdArgs(s FS) []string {
	a := []string{"--fd=3", "-o", "source=" + s.Source, "-o", "cache=auto", "-o", "sandbox=namespace", "-o", "log_level=err"}
	if userns(s.Owner) {
		a = append(a, "--rlimit-nofile=0")
	}
	return a
}

// VirtiofsdLine is the virtiofsd command ops starts for s, as a shell
// line, for -v (its descriptor 3 is the listening socket).
func VirtiofsdLine(s FS) string {
	return ShellLine(append([]string{s.binary()}, virtiofsdArgs(s)...))
}

func (s FS) binary() string {
	if s.Binary != "" {
		return s.Binary
	}
	return VirtiofsdPath
}

func userns(owner string) bool { return owner != "" && owner != "0:0" }

// virtiofsd is one running virtiofsd.
type virtiofsd struct {
	source string // the host folder
	cmd    *exec.Cmd
	done   chan struct{} // closed once it has exited and been reaped
	stderr *dropLines
}

// virtiofsdQuitGrace is how long virtiofsd gets to quit by itself once
// QEMU has exited (its connection closed) before it is killed.
const virtiofsdQuitGrace = time.Second

// stop waits a little for virtiofsd to quit, as it does once QEMU has
// exited, then kills it (now: at once, QEMU never having started); it returns once virtiofsd is reaped. Waiting for
// the process ops started is waiting for the one in its sandbox too: it
// waits for that one.
func (v virtiofsd) stop(now bool) {
	// Its process group: the one in its sandbox as well.
	kill := func() { _ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL) }
	if now {
		kill()
	}
	select {
	case <-v.done:
	case <-time.After(virtiofsdQuitGrace):
		kill()
		<-v.done
	}
	v.stderr.flush()
}

// hangup is the line virtiofsd prints when QEMU closes its connection,
// which is how every VM ends.
func hangup(l []byte) bool { return bytes.Contains(l, []byte("Unexpected poll revents")) }

// startVirtiofsd starts virtiofsd for s and returns it with QEMU's end of
// its vhost-user connection. virtiofsd runs in its own process group and
// dies with ops (PR_SET_PDEATHSIG), as QEMU and passt do.
//
// Who it runs as: virtiofsd creates the guest's files with the guest's
// own user and group (the Linux guest's program runs as root), which
// needs root's privileges over the folder. Run as the host's root, a
// folder that some user owns would fill with files of root's that its
// owner cannot remove; so for such a folder virtiofsd is root only in a
// user namespace whose root is the folder's owner (Owner): the files the
// guest makes are the owner's, and it reaches what the owner may, as
// QEMU running as the owner does for a Nanos guest's 9p. A folder root
// owns is served by root itself. The namespace also lets an ops that is
// not root run it.
func startVirtiofsd(s FS, stderr io.Writer) (virtiofsd, *os.File, error) {
	if _, err := os.Stat(s.binary()); err != nil {
		return virtiofsd{}, nil, fmt.Errorf("sharing %s with the guest needs virtiofsd (%s not found; on Debian: apt-get install qemu-system-common)", s.Source, s.binary())
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if userns(s.Owner) {
		uid, gid, err := ids(s.Owner)
		if err != nil {
			return virtiofsd{}, nil, err
		}
		// Root in the namespace: without a Credential the child would be
		// ops's own (unmapped) user there, without privileges; and none of
		// ops's other groups.
		attr.Cloneflags, attr.Credential = syscall.CLONE_NEWUSER, &syscall.Credential{Groups: []uint32{}}
		attr.GidMappingsEnableSetgroups = true
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
	}
	addr, dir, err := socketAddr(s.Socket)
	if err != nil {
		return virtiofsd{}, nil, err
	}
	if dir != nil {
		defer dir.Close()
	}
	os.Remove(s.Socket)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return virtiofsd{}, nil, goerrors.Errorf("virtiofsd's socket for %s: %w", s.Source, err)
	}
	defer l.Close()
	defer os.Remove(s.Socket)
	lf, err := l.File()
	if err != nil {
		return virtiofsd{}, nil, goerrors.Wrap(err, 0)
	}
	defer lf.Close()
	// Connected before virtiofsd starts: the connection waits in the
	// listening socket's queue for virtiofsd's accept.
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return virtiofsd{}, nil, goerrors.Errorf("connecting to virtiofsd's socket %s: %w", s.Socket, err)
	}
	cf, err := conn.File()
	conn.Close()
	if err != nil {
		return virtiofsd{}, nil, goerrors.Wrap(err, 0)
	}
	if stderr == nil {
		stderr = io.Discard
	}
	v := virtiofsd{source: s.Source, cmd: exec.Command(s.binary(), virtiofsdArgs(s)...), done: make(chan struct{}), stderr: &dropLines{w: stderr, drop: hangup}}
	v.cmd.ExtraFiles = []*os.File{lf}
	v.cmd.Stderr = v.stderr
	v.cmd.SysProcAttr = attr
	if err := v.cmd.Start(); err != nil {
		cf.Close()
		if userns(s.Owner) && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSPC)) {
			return virtiofsd{}, nil, fmt.Errorf("sharing %s: virtiofsd acts as its owner (%s) in a user namespace, which this host refuses (%v): allow user namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone), or give the folder to root", s.Source, s.Owner, err)
		}
		return virtiofsd{}, nil, goerrors.Errorf("starting virtiofsd for %s: %w", s.Source, err)
	}
	go func() {
		_ = v.cmd.Wait()
		close(v.done)
	}()
	return v, cf, nil
}

// socketAddr is the address of the socket at path: the path itself, or,
// when it is longer than an address holds (a boot's folder beside an
// image deep in a test's ops home), the path through dir, its folder
// opened for the while.
func socketAddr(path string) (addr string, dir *os.File, err error) {
	if len(path) <= maxSocketPath {
		return path, nil, nil
	}
	dir, err = os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return "", nil, goerrors.Errorf("virtiofsd's socket folder: %w", err)
	}
	addr = fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))
	if len(addr) > maxSocketPath {
		dir.Close()
		return "", nil, fmt.Errorf("virtiofsd's socket name %s is longer than a socket address holds (%d bytes)", filepath.Base(path), maxSocketPath)
	}
	return addr, dir, nil
}

// ids parses "UID:GID".
func ids(owner string) (uid, gid int, err error) {
	u, g, ok := strings.Cut(owner, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return 0, 0, fmt.Errorf("virtiofsd's user %q: want UID:GID", owner)
	}
	return uid, gid, nil
}

// startFS starts a virtiofsd for each of vm's virtio-fs shares, with
// sockets in their folders; on error none is left running.
func startFS(vm VM, stderr io.Writer) ([]virtiofsd, []*os.File, error) {
	var procs []virtiofsd
	var conns []*os.File
	for _, s := range vm.FS {
		if s.Socket == "" || !filepath.IsAbs(s.Socket) {
			stopFS(procs, conns, true)
			return nil, nil, errors.New("virtio-fs share " + s.Source + ": no socket path (an absolute path in the boot's folder)")
		}
		p, c, err := startVirtiofsd(s, stderr)
		if err != nil {
			stopFS(procs, conns, true)
			return nil, nil, err
		}
		procs, conns = append(procs, p), append(conns, c)
	}
	return procs, conns, nil
}

// stopFS closes ops's ends of the connections and stops the virtiofsds
// (now: without waiting for them to quit).
func stopFS(procs []virtiofsd, conns []*os.File, now bool) {
	for _, c := range conns {
		c.Close()
	}
	for _, p := range procs {
		p.stop(now)
	}
}
