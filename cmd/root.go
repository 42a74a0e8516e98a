// Package cmd holds ops's commands: each parses flags, calls the library
// and decides what the user sees and the exit code.
package cmd

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X github.com/opsdev/ops/cmd.Version=...".
var Version = "dev"

// ExitError carries an exit code out of a command without printing more.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// App is one invocation's streams and environment.
type App struct {
	Stdout, Stderr io.Writer
}

// NewRoot builds the command tree.
func NewRoot(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "ops",
		Short: "Run any Linux program as a unikernel virtual machine",
		Long: `ops turns a Linux ELF program into a bootable unikernel image and runs it
under QEMU: the Nanos kernel when a release is installed ('ops update'),
otherwise a minimal Linux microVM guest built from the host's kernel.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetOut(app.Stdout)
	root.SetErr(app.Stderr)
	root.AddCommand(newBuildCmd(app), newRunCmd(app), newUpdateCmd(app), newVersionCmd(app), newImageCmd(app),
		newPkgCmd(app), newPkgListCmd(app, "list"), newLoadCmd(app), newProxyCmd(), newComposeCmd(app))
	return root
}

// Main runs ops and returns the process exit code.
func Main(args []string) int {
	app := &App{Stdout: os.Stdout, Stderr: os.Stderr}
	root := NewRoot(app)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	fmt.Fprintf(app.Stderr, "ops: %v\n", err)
	return 1
}

func newVersionCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ops's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(app.Stdout, "ops %s\n", Version)
			return nil
		},
	}
}
