package qemu

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"

	goerrors "github.com/go-errors/errors"
)

// QMP sends one command to a running QEMU over its QMP socket (-qmp
// unix:PATH): the capabilities handshake, then the command, waiting at
// most timeout for the answer.
func QMP(socket, command string, timeout time.Duration) error {
	c, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return goerrors.Errorf("QMP %s: %w", socket, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(c)
	// The greeting, then one answer per command; events may come between.
	if _, err := r.ReadBytes('\n'); err != nil {
		return goerrors.Errorf("QMP greeting: %w", err)
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		if err := json.NewEncoder(c).Encode(map[string]string{"execute": cmd}); err != nil {
			return goerrors.Wrap(err, 0)
		}
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return goerrors.Errorf("QMP %s: %w", cmd, err)
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
				return fmt.Errorf("QMP %s: %s", cmd, m.Error.Desc)
			}
			if m.Return != nil {
				break
			}
		}
	}
	return nil
}
