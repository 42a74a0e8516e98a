package cmd

import (
	"io"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
)

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
			var conn net.Conn
			var err error
			// The service may still be booting: retry for a while.
			for i := 0; i < 100; i++ {
				if conn, err = net.DialTimeout("tcp", args[0], time.Second); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				return &ExitError{Code: 1}
			}
			done := make(chan struct{}, 2)
			go func() {
				io.Copy(conn, os.Stdin)
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				done <- struct{}{}
			}()
			go func() {
				io.Copy(os.Stdout, conn)
				os.Stdout.Close()
				done <- struct{}{}
			}()
			<-done
			<-done
			return nil
		},
	}
}
