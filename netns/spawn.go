//go:build linux

package netns

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"

	goerrors "github.com/go-errors/errors"
	"golang.org/x/sys/unix"
)

// The spawn protocol, over the holder's unix socket: the client sends one
// request, a JSON object with passt's arguments, with two descriptors
// attached (passt's end of its socket pair with QEMU, which passt gets as
// descriptor 3, and where its standard error goes), then closes its
// sending half. The holder answers with one JSON line: passt's pid, or an
// error; then, once passt has exited, a second line with its exit status.
type request struct {
	Args []string `json:"args"`
}

type reply struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	Exit  *int   `json:"exit,omitempty"`
}

// PasstFD is the descriptor passt gets its end of the socket pair as.
const PasstFD = 3

// maxRequest bounds a request's size.
const maxRequest = 64 << 10

// passtOption reports whether a client may give passt option a: those of
// a VM's network, nothing that names a file, a user or another namespace.
func passtOption(a string) bool {
	switch a {
	case "--foreground", "--quiet", "--one-off", "--fd", "--address", "--netmask", "--gateway",
		"--no-map-gw", "--dns-forward", "--dns", "--ipv4-only", "--tcp-ports", "--udp-ports":
		return true
	}
	return false
}

// checkArgs reports the first option in args that a client may not give.
func checkArgs(args []string) error {
	for _, a := range args {
		if strings.HasPrefix(a, "-") && !passtOption(a) {
			return fmt.Errorf("passt option %q is not one a VM's network uses", a)
		}
	}
	return nil
}

// Server starts passt in the holder's namespace for the VMs' supervisors.
type Server struct {
	Passt string // the passt binary
	// Started, if set, is told of each passt started (tests).
	Started func(pid int)
}

// Serve answers spawn requests on l until l is closed. Only processes of
// the holder's own user (as the namespace sees them) are served.
func (s Server) Serve(l *net.UnixListener) error {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return err
		}
		go s.handle(c)
	}
}

func (s Server) handle(c *net.UnixConn) {
	defer c.Close()
	cmd, err := s.spawn(c)
	if err != nil {
		writeReply(c, reply{Error: err.Error()})
		return
	}
	writeReply(c, reply{Pid: cmd.Process.Pid})
	cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	writeReply(c, reply{Exit: &code})
}

func writeReply(w io.Writer, r reply) {
	b, _ := json.Marshal(r)
	w.Write(append(b, '\n'))
}

func (s Server) spawn(c *net.UnixConn) (*exec.Cmd, error) {
	if err := samePeer(c); err != nil {
		return nil, err
	}
	buf := make([]byte, maxRequest)
	oob := make([]byte, unix.CmsgSpace(2*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	files, err := rights(oob[:oobn])
	defer func() {
		for _, f := range files {
			f.Close() // passt has its own copies
		}
	}()
	if err != nil {
		return nil, err
	}
	if len(files) != 2 {
		return nil, fmt.Errorf("a spawn request carries 2 descriptors, not %d", len(files))
	}
	for n < len(buf) {
		k, err := c.Read(buf[n:])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, goerrors.Wrap(err, 0)
		}
	}
	var req request
	if err := json.Unmarshal(buf[:n], &req); err != nil {
		return nil, fmt.Errorf("spawn request: %w", err)
	}
	if err := checkArgs(req.Args); err != nil {
		return nil, err
	}
	cmd := exec.Command(s.Passt, req.Args...)
	cmd.ExtraFiles = []*os.File{files[0]}
	cmd.Stderr = files[1]
	// passt dies with the holder, and with it the network of the VMs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, goerrors.Errorf("starting passt: %w", err)
	}
	if s.Started != nil {
		s.Started(cmd.Process.Pid)
	}
	return cmd, nil
}

// samePeer refuses a client that is not the server's own user.
func samePeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if cerr != nil {
		return goerrors.Wrap(cerr, 0)
	}
	if int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("user %d may not start processes here", cred.Uid)
	}
	return nil
}

// rights is the descriptors a control message carried.
func rights(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "passed"))
		}
	}
	return files, nil
}

// Child is a passt the holder started.
type Child struct {
	Pid int
	c   *net.UnixConn
	r   *bufio.Reader
}

// Wait returns passt's exit status once it has exited; an error when the
// holder stopped first (which kills passt).
func (ch *Child) Wait() (int, error) {
	defer ch.c.Close()
	line, err := ch.r.ReadBytes('\n')
	var r reply
	if err != nil || json.Unmarshal(line, &r) != nil || r.Exit == nil {
		return -1, errors.New("the project's network stopped")
	}
	return *r.Exit, nil
}

// Spawn asks the holder listening on sock to start passt with args,
// netEnd as its descriptor 3 and stderr as its standard error.
func Spawn(sock string, args []string, netEnd, stderr *os.File) (*Child, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("the project's network is not running (%w); ops compose down, then up, starts it again", errors.Unwrap(err))
	}
	b, err := json.Marshal(request{Args: args})
	if err != nil {
		c.Close()
		return nil, err
	}
	if _, _, err := c.WriteMsgUnix(b, unix.UnixRights(int(netEnd.Fd()), int(stderr.Fd())), nil); err != nil {
		c.Close()
		return nil, goerrors.Errorf("asking for passt: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		c.Close()
		return nil, goerrors.Wrap(err, 0)
	}
	r := bufio.NewReader(io.LimitReader(c, maxRequest))
	line, err := r.ReadBytes('\n')
	var rep reply
	if err != nil || json.Unmarshal(line, &rep) != nil {
		c.Close()
		return nil, fmt.Errorf("the project's network answered %q (%v)", line, err)
	}
	if rep.Error != "" {
		c.Close()
		return nil, fmt.Errorf("the project's network: %s", rep.Error)
	}
	return &Child{Pid: rep.Pid, c: c, r: r}, nil
}
