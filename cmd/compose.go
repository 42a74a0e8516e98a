package cmd

import (
	"fmt"
	"os"
	"strconv"

	"github.com/opsdev/ops/compose"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

const composeHelp = `Run the services of a compose file, each its own unikernel, each reachable
from the others by its service name.

  ops compose up -f compose.yaml        foreground; Ctrl-C stops everything
  ops compose up -f compose.yaml -d     in the background, as instances (ops instance list, logs)
  ops compose down -f compose.yaml

Without root (the default), every guest uses QEMU's user-mode networking; the
other services are reached at stable addresses (10.0.2.100, .101, ... by service
name, written into each image's /etc/hosts) through forwards to their ports on
the host's 127.0.0.1. With --bridged (root), the project gets a private bridge
and every service a tap device and an address on it.

compose.yaml:
  name: taxi
  services:
    passenger:
      program: ./bin/passenger     # an ELF (or package: eyberg/node:20, local: true)
      args: ["--port", "8080"]
      env: {MODE: prod}
      expose: [8080]               # ports the other services use
    trip:
      program: ./bin/trip
      expose: [8080]
      ports: ["18080:8080"]        # published on the host's 127.0.0.1`

type composeFlags struct {
	file    string
	detach  bool
	bridged bool
	subnet  string
	accel   bool
	verbose bool
	guest   string
}

func newComposeCmd(app *App) *cobra.Command {
	f := &composeFlags{}
	c := &cobra.Command{
		Use:   "compose",
		Short: "Run several unikernels that reach each other by name",
		Long:  composeHelp,
	}
	c.PersistentFlags().StringVarP(&f.file, "file", "f", "compose.yaml", "compose file")
	up := &cobra.Command{
		Use:   "up",
		Short: "Build and start every service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.detach && f.bridged {
				return composeDetach(app, f)
			}
			return composeUp(app, f)
		},
	}
	up.Flags().BoolVarP(&f.detach, "detach", "d", false, "run in the background, each service as an instance named <project>-<service> (ops instance list)")
	up.Flags().BoolVar(&f.bridged, "bridged", false, "a private bridge with one address per service (needs root)")
	up.Flags().StringVar(&f.subnet, "subnet", "10.3.0.0/24", "the bridge's subnet with --bridged")
	up.Flags().BoolVar(&f.accel, "accel", true, "use KVM where it really works")
	up.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "print QEMU command lines")
	up.Flags().StringVar(&f.guest, "guest", "", "guest for every service without its own: nanos or linux")
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop a project started with up -d, removing everything it made",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := openProject(app, f)
			if err != nil {
				return err
			}
			store, _, err := instances(app)
			if err != nil {
				return err
			}
			if had, err := p.DownInstances(store); err != nil {
				return err
			} else if !had {
				if err := p.Down(); err != nil {
					return err
				}
			}
			fmt.Fprintf(app.Stdout, "compose %s: down\n", p.File.Name)
			return nil
		},
	}
	c.AddCommand(up, down)
	return c
}

func openProject(app *App, f *composeFlags) (*compose.Project, error) {
	home, err := app.Home()
	if err != nil {
		return nil, err
	}
	return compose.OpenProject(home.Dir, f.file)
}

func composeUp(app *App, f *composeFlags) error {
	ctx := app.Context()
	file, err := compose.Load(f.file)
	if err != nil {
		return err
	}
	home, err := app.Home()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	mode := compose.UserMode
	if f.bridged {
		mode = compose.Bridged
	}
	code, err := compose.Up(ctx, file, compose.UpOptions{
		Home: home, Mode: mode, Subnet: f.subnet, Accel: f.accel, Guest: f.guest, Verbose: f.verbose, Self: self, OpsVersion: Version,
		Stdout: app.Stdout, Stderr: app.Stderr,
		ResolvePackage: func(name string, local bool, c *lepton.Config) (string, error) {
			_, dir, _, err := app.resolvePackage(c, name, local)
			return dir, err
		},
		Say:    func(line string) { fmt.Fprintln(app.Stderr, line) },
		Detach: f.detach,
	})
	if err != nil {
		return err
	}
	return exitWith(code)
}

// composeDetach starts `compose up` in the background in its own session.
func composeDetach(app *App, f *composeFlags) error {
	p, err := openProject(app, f)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := []string{self, "compose", "up", "-f", f.file, "--subnet", f.subnet, "--accel=" + strconv.FormatBool(f.accel)}
	if f.bridged {
		argv = append(argv, "--bridged")
	}
	if f.guest != "" {
		argv = append(argv, "--guest", f.guest)
	}
	pid, err := p.Detach(argv)
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "compose %s: started in the background (pid %d); logs in %s; stop with 'ops compose down -f %s'\n", p.File.Name, pid, p.LogPath(), f.file)
	return nil
}
