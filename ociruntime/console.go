package ociruntime

import (
	"fmt"
	"net"
	"os"

	goerrors "github.com/go-errors/errors"
	"golang.org/x/sys/unix"
)

// openPty makes a pseudo-terminal: its master and its slave, whose name
// (/dev/pts/N) is the slave file's.
func openPty() (master, slave *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, goerrors.Errorf("opening /dev/ptmx: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, goerrors.Errorf("unlocking the pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, goerrors.Errorf("finding the pty's number: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	sfd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, goerrors.Errorf("opening %s: %w", name, err)
	}
	return master, os.NewFile(uintptr(sfd), name), nil
}

// sendConsole sends the pty's master to the engine listening on the
// console socket, as runc does: one message, the pty's name as payload,
// the descriptor as SCM_RIGHTS.
func sendConsole(socket string, master *os.File, name string) error {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("--console-socket %s: %w", socket, err)
	}
	defer c.Close()
	oob := unix.UnixRights(int(master.Fd()))
	if _, _, err := c.WriteMsgUnix([]byte(name), oob, nil); err != nil {
		return fmt.Errorf("--console-socket %s: sending the pty: %w", socket, err)
	}
	return nil
}

// closeExecFrom marks every descriptor from fd up close-on-exec, so that
// what the engine handed the runtime beyond standard input, output and
// error (its own pipes) is not held open by the supervisor, which lives
// as long as the container.
func closeExecFrom(fd int) error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	for _, e := range ents {
		var n int
		if _, err := fmt.Sscan(e.Name(), &n); err != nil || n < fd {
			continue
		}
		unix.CloseOnExec(n)
	}
	return nil
}
