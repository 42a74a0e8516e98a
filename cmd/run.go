package cmd

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

func newRunCmd(app *App) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [ELF]",
		Short: "Build an image from an ELF program (or reuse it) and boot it",
		Long: `Build an image from an ELF program, or reuse the image when nothing changed,
and boot it in the foreground. The guest's console is ops's standard output,
and ops exits with the guest program's exit code.

Port forwards listen on 127.0.0.1 unless an address is given (nanovms/ops
listens on every address):
  -p 8080              host 127.0.0.1:8080 -> guest 8080
  -p 8081:80           host 8081 -> guest 80
  -p 8080-80           host 8080 -> guest 80, as nanovms/ops reads it (first > second)
  -p 0.0.0.0:8080:8080 reachable from the network
  -p 9000-9002         three forwards, each to the same guest port

-d waits for a debugger (QEMU's gdb stub, port 1234 or -g) under software
emulation; --trace, --syscall-summary, --missing-files and --no-trace set
the Nanos manifest options of the same names.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.configFrom(cmd.Flags())
			if err != nil {
				return err
			}
			if f.skipBuild {
				if len(f.args) > 0 || len(f.envs) > 0 {
					return errors.New("-a and -e change what an image is built with; -s boots the image as it is (run without -s to rebuild it)")
				}
				name := c.Program
				if len(args) > 0 {
					name = args[0]
				}
				return runVM(app, f, c, lepton.PlanInput{}, filepath.Base(name))
			}
			in, name, err := elfInput(c, args)
			if err != nil {
				return err
			}
			return runVM(app, f, c, in, name)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// runVM builds (or reuses, or with -s finds) the image and boots it in
// the foreground; ops's exit code is the guest program's.
func runVM(app *App, f *runFlags, c *lepton.Config, in lepton.PlanInput, name string) error {
	// Stop on Ctrl-C or SIGTERM from here on: nothing is left behind.
	ctx := app.Context()
	configNotices(app, c)
	home, err := app.Home()
	if err != nil {
		return err
	}
	if c.RunConfig.Background && c.RunConfig.InstanceName != "" && !f.skipBuild {
		// An instance's image is its own, as instance create makes it.
		name = c.RunConfig.InstanceName
	}
	target := lepton.Target{Output: f.output, DefaultName: name}
	var b *lepton.Built
	if f.skipBuild {
		b, err = lepton.Existing(home, c, target)
	} else {
		in.OpsVersion = Version
		b, err = app.builder.Build(home, in, target)
	}
	if err != nil {
		return err
	}
	if b.Note != "" {
		fmt.Fprintln(app.Stderr, b.Note)
	}
	reportPlan(app, b.Plan, c.RunConfig.Verbose || c.RunConfig.ShowDebug, c.RunConfig.ShowWarnings)
	if err := runNotices(app, c, name); err != nil {
		return err
	}
	if c.RunConfig.Background {
		return runInBackground(app, c, b, name)
	}
	accel, err := forcedAccel()
	if err != nil {
		return err
	}
	m := &lepton.Machine{Built: b, RunConfig: c.RunConfig, Writable: f.skipBuild, QEMU: f.qemu, Accel: accel, Home: home,
		Stdout: app.Stdout, Stderr: app.Stderr, Verbose: c.RunConfig.Verbose,
		Say: func(line string) { fmt.Fprintln(app.Stderr, line) },
	}
	out, err := m.Run(ctx)
	switch {
	case err != nil:
		return err
	case out.Stopped:
		return &ExitError{Code: app.stoppedCode()}
	case out.NoCode != nil:
		return out.NoCode
	}
	return exitWith(out.ExitCode)
}

// runInBackground is RunConfig.Background: the image runs as an instance
// (named RunConfig.InstanceName, else the image's name) instead.
func runInBackground(app *App, c *lepton.Config, b *lepton.Built, name string) error {
	store, _, err := instances(app)
	if err != nil {
		return err
	}
	if c.RunConfig.InstanceName != "" {
		name = c.RunConfig.InstanceName
	}
	cc := *c
	cc.Guest = b.Guest.Name()
	spec := instance.Spec{Name: name, Image: b.Path, Config: cc, Restart: instance.Policy{Mode: "no"}, Created: time.Now().UTC()}
	if err := store.Create(spec); err != nil {
		return err
	}
	return startInstance(app, store, name)
}

func exitWith(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}
