package cmd

import (
	"os"
	"time"

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
// another compose service (guestfwd ... cmd:ops proxy ADDR): it joins
// its standard input and output, the guest's connection, to ADDR on the
// host. It prints nothing: its output is the connection.
func newProxyCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "proxy ADDR",
		Short:  "Join standard input and output to a TCP address (used by ops compose)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, err := splice.Dial(args[0], 10*time.Second)
			if err != nil {
				return &ExitError{Code: 1}
			}
			splice.Join(conn, stdio{})
			return nil
		},
	}
}
