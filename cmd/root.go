// Package cmd holds ops's commands: each parses flags, calls the library
// and decides what the user sees and the exit code.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/pkgenv"
	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X github.com/opsdev/ops/cmd.Version=...".
var Version = "dev"

// ExitError carries an exit code out of a command without printing more.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// App is one invocation: its streams, and what its commands share, each
// made on first use (the ops home, the package store, the signal-aware
// context), so a command that needs none of them pays for none.
type App struct {
	Stdout, Stderr io.Writer

	homeOnce sync.Once
	home     lepton.Home
	homeErr  error

	sigOnce sync.Once
	ctx     context.Context
	release func()
	mu      sync.Mutex
	caught  os.Signal

	builder lepton.Builder // every build of this process holds the collector back through it
}

// Home is the ops home (~/.ops, or $OPS_HOME/.ops).
func (a *App) Home() (lepton.Home, error) {
	a.homeOnce.Do(func() { a.home, a.homeErr = lepton.DefaultHome() })
	return a.home, a.homeErr
}

// Context ends at the first SIGINT or SIGTERM. The handler is installed
// on first use: commands that never ask keep the default (Ctrl-C ends
// them at once).
func (a *App) Context() context.Context {
	a.sigOnce.Do(func() {
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case s := <-sigs:
				a.mu.Lock()
				a.caught = s
				a.mu.Unlock()
				cancel()
			case <-ctx.Done():
			}
		}()
		a.ctx = ctx
		a.release = func() { signal.Stop(sigs); cancel() }
	})
	return a.ctx
}

// stoppedCode is the exit code after a signal stopped the command: 128
// plus the signal's number, as shells report it.
func (a *App) stoppedCode() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.caught == syscall.SIGTERM {
		return 128 + int(syscall.SIGTERM)
	}
	return 128 + int(syscall.SIGINT)
}

// Packages is the package store in the ops home for the architecture c
// targets (c.Target(): Arch, --arch, else this machine's) and the
// repository its index comes from (config.json's URLs, then the
// environment's, win).
func (a *App) Packages(c *lepton.Config) (*pkgenv.Env, error) {
	home, err := a.Home()
	if err != nil {
		return nil, err
	}
	return newPkgEnv(a, home, c)
}

// NewRoot builds the command tree, every command.
func NewRoot(app *App) *cobra.Command {
	return newRoot(app, nil)
}

// topCommand is one of ops's top-level commands: its name (as its Use
// begins) and what makes it.
type topCommand struct {
	name string
	make func(app *App) *cobra.Command
}

// topCommands lists ops's top-level commands in the order help shows
// them. Each is made only when used: see newRootFor.
func topCommands() []topCommand {
	return []topCommand{
		{"build", newBuildCmd},
		{"run", newRunCmd},
		{"update", newUpdateCmd},
		{"version", newVersionCmd},
		{"image", newImageCmd},
		{"pkg", newPkgCmd},
		{"list", func(app *App) *cobra.Command { return newPkgListCmd(app, "list") }},
		{"load", newLoadCmd},
		{"proxy", func(*App) *cobra.Command { return newProxyCmd() }},
		{"compose", newComposeCmd},
		{"volume", newVolumeCmd},
		{"instance", newInstanceCmd},
		{"profile", newProfileCmd},
		{"env", func(*App) *cobra.Command { return newEnvCmd() }},
		{"runtime", newRuntimeCmd},
	}
}

// newRootFor builds the command tree that args need: when args[0] names a
// top-level command, the root with only that command (cobra dispatches to
// it and shows nothing of the others); otherwise (help, completion, a flag
// first, a typo to suggest a name for) every command. Making every
// command's flags costs more than the rest of a short command's start.
func newRootFor(app *App, args []string) *cobra.Command {
	if len(args) > 0 {
		for _, c := range topCommands() {
			if c.name == args[0] {
				return newRoot(app, &c)
			}
		}
	}
	return newRoot(app, nil)
}

// newRoot builds the root holding the one command only, or every command
// when only is nil.
func newRoot(app *App, only *topCommand) *cobra.Command {
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
	outputFlags(root)
	if only != nil {
		root.AddCommand(only.make(app))
		return root
	}
	for _, c := range topCommands() {
		root.AddCommand(c.make(app))
	}
	return root
}

// Main runs ops and returns the process exit code. An error prints as one
// line; with -v or OPS_DEBUG=1, an unexpected one (it carries a stack from
// where it started: I/O, QEMU, netlink, a registry) prints its stack too,
// for bug reports.
func Main(args []string) int {
	app := &App{Stdout: os.Stdout, Stderr: os.Stderr}
	defer func() {
		if app.release != nil {
			app.release()
		}
	}()
	args = composeLogsFollow(args)
	root := newRootFor(app, args)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	fmt.Fprintf(app.Stderr, "ops: %v\n", err)
	var se *goerrors.Error
	if debugging(cmd) && errors.As(err, &se) {
		fmt.Fprintf(app.Stderr, "%s", se.Stack())
	}
	return 1
}

// debugging reports whether the user asked for details: -v on a command
// that has it, --show-debug, --show-errors, or OPS_DEBUG=1.
func debugging(cmd *cobra.Command) bool {
	if os.Getenv("OPS_DEBUG") == "1" {
		return true
	}
	return flagSet(cmd, "verbose") || flagSet(cmd, "show-debug") || flagSet(cmd, "show-errors")
}
