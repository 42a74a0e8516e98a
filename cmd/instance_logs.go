package cmd

import (
	"bytes"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func newInstanceLogsCmd(app *App) *cobra.Command {
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print an instance's console (-f follows it while the instance runs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, err := instances(app)
			if err != nil {
				return err
			}
			if _, err := store.Get(args[0]); err != nil {
				return err
			}
			f, err := os.Open(store.LogFile(args[0]))
			if os.IsNotExist(err) {
				return nil // never started
			}
			if err != nil {
				return err
			}
			defer f.Close()
			if err := printTail(app.Stdout, f, tail); err != nil {
				return err
			}
			if !follow {
				return nil
			}
			ctx := app.Context()
			for ctx.Err() == nil {
				n, err := io.Copy(app.Stdout, f)
				if err != nil {
					return err
				}
				if n == 0 {
					in, err := store.Get(args[0])
					if err != nil || !in.Active() {
						_, err = io.Copy(app.Stdout, f)
						return err
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the guest writes while the instance runs")
	cmd.Flags().IntVarP(&tail, "tail", "n", -1, "print only the last N lines first")
	return cmd
}

// printTail writes the last n lines of f (all of it for n < 0) and leaves
// f at its end.
func printTail(w io.Writer, f *os.File, n int) error {
	b, err := io.ReadAll(f)
	if err != nil || n < 0 {
		if err == nil {
			_, err = w.Write(b)
		}
		return err
	}
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	start := end
	for i := 0; i < n && start > 0; i++ {
		start = bytes.LastIndexByte(b[:start], '\n')
		if start < 0 {
			start = 0
			break
		}
	}
	if start > 0 {
		start++
	}
	if n == 0 {
		start = len(b)
	}
	_, err = w.Write(b[start:])
	return err
}
