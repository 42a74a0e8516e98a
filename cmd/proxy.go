package cmd

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/opsdev/ops/compose"
	"github.com/opsdev/ops/internal/splice"
	"github.com/spf13/cobra"
)

// stdio is ops's standard input and output as one stream: closing it
// closes standard output, which tells QEMU the connection's reply ended.
type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (stdio) Close() error                { return os.Stdout.Close() }

// newProxyCmd is the connector QEMU runs for each guest connection to
// another compose service, on a project without a network namespace of
// its own (guestfwd ... cmd:ops proxy --project DIR SERVICE:PORT): the
// project's Balancer orders the replicas, and the connection, its
// standard input and output, is joined to the first replica's port on the
// host that answers (or to ADDR itself without --project). It prints
// nothing: its output is the connection.
func newProxyCmd() *cobra.Command {
	var project string
	c := &cobra.Command{
		Use:    "proxy [--project DIR SERVICE:PORT | ADDR]",
		Short:  "Join standard input and output to a TCP address (used by ops compose)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			route := splice.Route{Addrs: []string{args[0]}}
			if project != "" {
				svc, p, _ := strings.Cut(args[0], ":")
				port, err := strconv.Atoi(p)
				if err != nil {
					return &ExitError{Code: 1}
				}
				if route, err = (compose.Balancer{Dir: project}).Route(svc, port); err != nil {
					return &ExitError{Code: 1}
				}
			}
			// The first replica that answers; when none does, the first
			// may still be booting.
			conn, err := splice.DialRoute(route)
			if err != nil {
				conn, err = splice.Dial(route.Addrs[0], 10*time.Second)
			}
			if err != nil {
				return &ExitError{Code: 1}
			}
			splice.Join(conn, stdio{})
			return nil
		},
	}
	c.Flags().StringVar(&project, "project", "", "a compose project's state folder: choose the replica of SERVICE:PORT")
	return c
}
