package qemu

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"time"

	goerrors "github.com/go-errors/errors"
	"golang.org/x/sys/unix"
)

// qmpConn is a QMP session with a running QEMU over its unix socket.
type qmpConn struct {
	c *net.UnixConn
	r *bufio.Reader
}

// dialQMP connects to socket (-qmp unix:PATH) and does the capabilities
// handshake; every exchange must end before deadline.
func dialQMP(socket string, deadline time.Time) (*qmpConn, error) {
	c, err := net.DialTimeout("unix", socket, time.Until(deadline))
	if err != nil {
		return nil, goerrors.Errorf("QMP %s: %w", socket, err)
	}
	q := &qmpConn{c: c.(*net.UnixConn), r: bufio.NewReader(c)}
	q.c.SetDeadline(deadline)
	// The greeting, then one answer per command; events may come between.
	if _, err := q.r.ReadBytes('\n'); err != nil {
		q.c.Close()
		return nil, goerrors.Errorf("QMP greeting: %w", err)
	}
	if _, err := q.do("qmp_capabilities", nil, nil); err != nil {
		q.c.Close()
		return nil, err
	}
	return q, nil
}

// do sends one command, with the descriptor f alongside when given (for
// getfd), and returns its answer.
func (q *qmpConn) do(cmd string, args any, f *os.File) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	var oob []byte
	if f != nil {
		oob = unix.UnixRights(int(f.Fd()))
	}
	if _, _, err := q.c.WriteMsgUnix(append(b, '\n'), oob, nil); err != nil {
		return nil, goerrors.Errorf("QMP %s: %w", cmd, err)
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return nil, goerrors.Errorf("QMP %s: %w", cmd, err)
		}
		var m struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		if m.Error != nil {
			return nil, fmt.Errorf("QMP %s: %s", cmd, m.Error.Desc)
		}
		if m.Return != nil {
			return m.Return, nil
		}
	}
}

// QMP sends one command to a running QEMU over its QMP socket (-qmp
// unix:PATH): the capabilities handshake, then the command, waiting at
// most timeout for the answer.
func QMP(socket, command string, timeout time.Duration) error {
	q, err := dialQMP(socket, time.Now().Add(timeout))
	if err != nil {
		return err
	}
	defer q.c.Close()
	_, err = q.do(command, nil, nil)
	return err
}

// SaveState writes the running VM's state (devices and memory, QEMU's
// migration stream) into state, then lets the VM run on: the VM keeps
// running while its memory is copied, and stops only for the last pages
// and the devices. A VM that waits for its host, as the Linux guest's init
// does at its snapshot point, writes nothing meanwhile, so the copy is
// exact. QEMU gets state's descriptor over the socket (getfd), so an
// unprivileged QEMU writes a file it could not open.
func SaveState(socket string, state *os.File, timeout time.Duration) (err error) {
	q, err := dialQMP(socket, time.Now().Add(timeout))
	if err != nil {
		return err
	}
	defer q.c.Close()
	migrating := false
	defer func() {
		if err != nil && migrating {
			resume(socket)
		}
	}()
	if _, err := q.do("getfd", map[string]string{"fdname": "ops-state"}, state); err != nil {
		return err
	}
	// QEMU paces a migration to 128 MiB/s unless told otherwise: a file
	// on this host takes it as fast as memory goes.
	if _, err := q.do("migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40}, nil); err != nil {
		return err
	}
	migrating = true
	if _, err := q.do("migrate", map[string]string{"uri": "fd:ops-state"}, nil); err != nil {
		return err
	}
	for {
		b, err := q.do("query-migrate", nil, nil)
		if err != nil {
			return err
		}
		var st struct {
			Status string `json:"status"`
			Error  string `json:"error-desc"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			return goerrors.Wrap(err, 0)
		}
		switch st.Status {
		case "completed":
			_, err := q.do("cont", nil, nil)
			return err
		case "failed", "cancelled":
			// The source VM runs on after a failed migration.
			return fmt.Errorf("saving the VM's state: %s %s", st.Status, st.Error)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resume, after a save that failed part way (a timeout, a lost
// connection), cancels the migration and lets the VM run: one that
// completed meanwhile leaves it stopped until a cont.
func resume(socket string) {
	q, err := dialQMP(socket, time.Now().Add(10*time.Second))
	if err != nil {
		return
	}
	defer q.c.Close()
	_, _ = q.do("migrate_cancel", nil, nil)
	for range 200 {
		b, err := q.do("query-migrate", nil, nil)
		var st struct {
			Status string `json:"status"`
		}
		if err != nil || json.Unmarshal(b, &st) != nil || st.Status != "active" && st.Status != "cancelling" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, _ = q.do("cont", nil, nil)
}
