package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

func newInstanceCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "instance",
		Short: "Unikernels in the background: create, list, logs, stop, start, restart, delete",
		Long: `An instance runs a built image (or an ELF, built first) in the background with
a supervisor process of its own: it owns QEMU, writes the console to a log,
records its state under <ops home>/instances/NAME/ and restarts the guest by
its policy (--restart no|on-failure[:N]|always).

  ops instance create redis --name cache -p 6379 --mounts data:/data --restart on-failure
  ops instance create /usr/bin/redis-server -a --appendonly -a yes --name cache2 -p 6380:6379
  ops instance list | logs cache [-f] [--tail 50] | stop cache [-t 10] | start cache | delete cache`,
	}
	c.AddCommand(newInstanceCreateCmd(app), newInstanceListCmd(app), newInstanceLogsCmd(app), newInstanceStopCmd(app),
		newInstanceStartCmd(app), newInstanceRestartCmd(app), newInstanceDeleteCmd(app), newInstanceSuperviseCmd(app))
	return c
}

func instances(app *App) (instance.Store, lepton.Home, error) {
	home, err := app.Home()
	if err != nil {
		return instance.Store{}, home, err
	}
	return instance.NewStore(home), home, nil
}

// startInstance starts the instance's supervisor and says how it went.
func startInstance(app *App, store instance.Store, name string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := store.Start(self, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "instance %s %s (supervisor pid %d); logs: ops instance logs %s\n", name, in.Status, in.Supervisor, name)
	return nil
}

func newInstanceListCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List instances: NAME IMAGE GUEST STATUS PID PORTS CREATED",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, err := instances(app)
			if err != nil {
				return err
			}
			list, err := store.List()
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []*instance.Instance{}
				}
				return json.NewEncoder(app.Stdout).Encode(list)
			}
			tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tIMAGE\tGUEST\tSTATUS\tPID\tPORTS\tCREATED")
			for _, in := range list {
				status := in.Status
				if in.ExitCode != nil && (status == instance.Exited || status == instance.Restarting) {
					status += fmt.Sprintf(" (%d)", *in.ExitCode)
				}
				pid := "-"
				if in.QEMU > 0 {
					pid = fmt.Sprint(in.QEMU)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Name, filepath.Base(in.Image), in.Guest, status, pid,
					strings.Join(in.Config.RunConfig.Ports, ","), in.Created.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&asJSON, "json", "j", false, "print JSON")
	return cmd
}

func newInstanceStopCmd(app *App) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop NAME",
		Short: "Stop an instance: the ACPI power button, then a hard stop after -t",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, err := instances(app)
			if err != nil {
				return err
			}
			if err := store.Stop(args[0], timeout); err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "instance %s stopped\n", args[0])
			return nil
		},
	}
	cmd.Flags().DurationVarP(&timeout, "timeout", "t", instance.DefaultStopTimeout, "how long the guest may take to power off (e.g. 10s)")
	return cmd
}

func newInstanceStartCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "start NAME",
		Short: "Start a stopped, exited or dead instance again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, err := instances(app)
			if err != nil {
				return err
			}
			in, err := store.Get(args[0])
			if err != nil {
				return err
			}
			if in.Active() {
				return fmt.Errorf("instance %s is %s already", in.Name, in.Status)
			}
			return startInstance(app, store, in.Name)
		},
	}
}

func newInstanceRestartCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "restart NAME",
		Short: "Stop an instance and start it again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, err := instances(app)
			if err != nil {
				return err
			}
			if err := store.Stop(args[0], instance.DefaultStopTimeout); err != nil {
				return err
			}
			return startInstance(app, store, args[0])
		},
	}
}

func newInstanceDeleteCmd(app *App) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete instances: their state, log and sockets (-f stops running ones first)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, err := instances(app)
			if err != nil {
				return err
			}
			for _, name := range args {
				if force {
					if err := store.Stop(name, 0); err != nil {
						return err
					}
				}
				if err := store.Delete(name); err != nil {
					return err
				}
				fmt.Fprintf(app.Stdout, "instance %s deleted\n", name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "stop a running instance first")
	return cmd
}

// newInstanceSuperviseCmd is the supervisor process itself, started
// detached by create and start.
func newInstanceSuperviseCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:    "supervise NAME",
		Short:  "Run an instance's supervisor (started by ops instance create and start)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, home, err := instances(app)
			if err != nil {
				return err
			}
			accel, err := forcedAccel()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return store.Supervise(ctx, home, args[0], instance.SuperviseOptions{Accel: accel})
		},
	}
}
