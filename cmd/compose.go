package cmd

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/opsdev/ops/compose"
	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
	"github.com/spf13/cobra"
)

const composeHelp = `Run the services of a compose file (the Compose Specification, as docker
compose reads it), each replica its own unikernel, each service reachable from
the others by its name.

  ops compose up -d                   build and start, in the background, as instances
  ops compose up                      ... in the foreground: logs until Ctrl-C, then down
  ops compose ps | logs [-f] [SERVICE] | restart [SERVICE]
  ops compose down [-v]               stop and remove; -v removes the named volumes too

Files: -f (several, merged in order), else compose.yaml, compose.yml,
docker-compose.yml (or .yaml) from here upwards; .env, --profile and
interpolation as docker compose does. ops's own keys go under x-ops:

  services:
    redis:
      image: redis:7                  # OCI reference or a docker save tarball
      healthcheck: {test: ["CMD", "redis-cli", "ping"], interval: 1s}
    web:
      x-ops: {program: ./bin/web}     # or package: NAME (local: true), guest, config
      command: ["--port", "8080"]
      ports: ["8080:8080"]            # published on the host's 127.0.0.1
      depends_on: {redis: {condition: service_healthy}}
      deploy: {replicas: 2, resources: {limits: {memory: 256M, cpus: "1"}}}
      healthcheck: {test: ["CMD", "curl", "-f", "http://localhost:8080/healthz"]}

Without root (the default), every guest uses QEMU's user-mode networking; the
other services are reached at stable addresses (10.0.2.100, .101, ... by service
name, written into each image's /etc/hosts), each connection handed by ops to a
ready replica in turn. With --bridged (root), the project gets a private bridge
and every replica a tap device and an address on it.`

type composeFlags struct {
	files    []string
	profiles []string
	name     string
	detach   bool
	bridged  bool
	loopback bool
	noSnap   bool
	subnet   string
	accel    bool
	verbose  bool
	guest    string
	insecure bool
	volumes  bool
	follow   bool
}

func newComposeCmd(app *App) *cobra.Command {
	f := &composeFlags{}
	c := &cobra.Command{
		Use:   "compose",
		Short: "Run several unikernels that reach each other by name, from a compose file",
		Long:  composeHelp,
	}
	pf := c.PersistentFlags()
	stringArrayVarP(pf, &f.files, "file", "f", "compose file (repeatable; default: compose.yaml, compose.yml, docker-compose.yml)")
	stringArrayVarP(pf, &f.profiles, "profile", "", "enable a profile (repeatable)")
	pf.StringVarP(&f.name, "project-name", "p", "", "project name (default: the file's name:, else its folder)")
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
	up.Flags().BoolVarP(&f.detach, "detach", "d", false, "run in the background, each replica as an instance (ops compose ps)")
	up.Flags().BoolVar(&f.bridged, "bridged", false, "a private bridge with one address per service (needs root)")
	up.Flags().StringVar(&f.subnet, "subnet", "10.3.0.0/24", "the bridge's subnet with --bridged")
	up.Flags().BoolVar(&f.accel, "accel", true, "use KVM where it really works")
	up.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "print QEMU command lines")
	up.Flags().BoolVar(&f.noSnap, "no-snapshot", false, "boot Linux-guest services cold every time, not from the state each image's first run saved")
	up.Flags().BoolVar(&f.loopback, "host-loopback", false, "let the services reach this host's 127.0.0.1 at 10.0.2.2, and connect out (QEMU's own network unrestricted); "+
		"by default a service reaches the other services by name and nothing else")
	up.Flags().StringVar(&f.guest, "guest", "", "guest for every service without its own: nanos or linux")
	insecureFlag(up.Flags(), &f.insecure)
	down := projectCmd(app, f, "down", "Stop and remove the project's instances (-v: and its named volumes)",
		func(p *compose.Project, store instance.Store, home lepton.Home, args []string) error {
			ins, err := p.Instances(store)
			if err != nil {
				return err
			}
			if len(ins) == 0 && p.PID() > 0 {
				if err := p.StopBackground(); err != nil {
					return err
				}
			}
			if err := compose.Down(store, p.File, home, f.volumes); err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "compose %s: down\n", p.File.Name)
			return nil
		})
	down.Args = cobra.NoArgs
	down.Flags().BoolVarP(&f.volumes, "volumes", "v", false, "remove the named volumes too")
	ps := projectCmd(app, f, "ps [SERVICE...]", "List the project's replicas with their status, health and ports",
		func(p *compose.Project, store instance.Store, _ lepton.Home, args []string) error {
			rows, err := p.PS(store, args...)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSERVICE\tSTATUS\tHEALTH\tPORTS")
			for _, r := range rows {
				h := r.Health
				if h == "" {
					h = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Service, r.Status, h, r.Ports)
			}
			if len(rows) > 0 && p.NetworkDown() {
				fmt.Fprintf(app.Stderr, "ops: project %s's network is down (its holder, ops compose net, exited: %s); ops compose down, then up, starts it again\n", p.File.Name, p.NetLog())
			}
			return tw.Flush()
		})
	logs := projectCmd(app, f, "logs [SERVICE...]", "Print the replicas' consoles, each line prefixed with its name (-f: follow)",
		func(p *compose.Project, store instance.Store, _ lepton.Home, args []string) error {
			ins, err := p.Instances(store, args...)
			if err != nil {
				return err
			}
			var names []string
			for _, in := range ins {
				names = append(names, in.Name)
			}
			return compose.Logs(app.Context(), store, names, app.Stdout, f.follow)
		})
	logs.Flags().BoolVar(&f.follow, "follow", false, "keep printing what the consoles write (-f after logs)")
	restart := projectCmd(app, f, "restart [SERVICE...]", "Stop and start the project's replicas (or those of the services named)",
		func(p *compose.Project, store instance.Store, _ lepton.Home, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if err := p.Restart(store, self, args...); err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "compose %s: restarted\n", p.File.Name)
			return nil
		})
	c.AddCommand(up, down, ps, logs, restart, newComposeNetCmd())
	return c
}

// composeLogsFollow reads -f after "compose logs" as --follow, as docker
// compose does (before it, -f is --file).
func composeLogsFollow(args []string) []string {
	out := append([]string(nil), args...)
	compose, logs := false, false
	for i, a := range out {
		switch {
		case a == "compose" && !compose:
			compose = true
		case a == "logs" && compose && !logs:
			logs = true
		case a == "-f" && logs:
			out[i] = "--follow"
		}
	}
	return out
}

func loadOptions(f *composeFlags) compose.LoadOptions {
	return compose.LoadOptions{Files: f.files, Profiles: f.profiles, Name: f.name, Env: os.Environ()}
}

// projectCmd is a subcommand that works on the project of the compose
// files: it loads them and finds the instance store first.
func projectCmd(app *App, f *composeFlags, use, short string, run func(p *compose.Project, store instance.Store, home lepton.Home, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, home, err := instances(app)
			if err != nil {
				return err
			}
			p, err := compose.OpenProject(app.Context(), home, loadOptions(f))
			if err != nil {
				return err
			}
			return run(p, store, home, args)
		},
	}
}

func composeUp(app *App, f *composeFlags) error {
	ctx := app.Context()
	file, err := compose.Load(ctx, loadOptions(f))
	if err != nil {
		return err
	}
	for _, w := range file.Warnings {
		fmt.Fprintln(app.Stderr, w)
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
	if f.loopback && !f.bridged {
		fmt.Fprintln(app.Stderr, "ops: --host-loopback: the services reach every service listening on this host's 127.0.0.1, at 10.0.2.2, and connect out")
	}
	if f.bridged {
		mode = compose.Bridged
	}
	accel, err := forcedAccel()
	if err != nil {
		return err
	}
	pkgs, err := app.Packages(nil)
	if err != nil {
		return err
	}
	pkgs.Registry.Insecure = f.insecure
	code, err := compose.Up(ctx, file, compose.UpOptions{
		Home: home, Mode: mode, Subnet: f.subnet, Accel: f.accel, ForceAccel: accel, Guest: f.guest, Verbose: f.verbose, Self: self, OpsVersion: Version,
		HostLoopback: f.loopback, NoSnapshot: f.noSnap || noSnapshotEnv(),
		Stdout: app.Stdout, Stderr: app.Stderr,
		Packages: pkgs,
		Builder:  &app.builder,
		Say:      func(line string) { fmt.Fprintln(app.Stderr, line) },
		Detach:   f.detach,
	})
	if err != nil {
		return err
	}
	if !f.detach && ctx.Err() != nil {
		// Stopped by Ctrl-C or SIGTERM (and brought down): as ops run.
		return &ExitError{Code: app.stoppedCode()}
	}
	return exitWith(code)
}

// composeDetach starts `compose up --bridged` in the background in its own session.
func composeDetach(app *App, f *composeFlags) error {
	home, err := app.Home()
	if err != nil {
		return err
	}
	p, err := compose.OpenProject(app.Context(), home, loadOptions(f))
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := []string{self, "compose"}
	for _, file := range f.files {
		abs, err := filepath.Abs(file)
		if err != nil {
			return err
		}
		argv = append(argv, "-f", abs)
	}
	for _, pr := range f.profiles {
		argv = append(argv, "--profile", pr)
	}
	if f.name != "" {
		argv = append(argv, "-p", f.name)
	}
	argv = append(argv, "up", "--subnet", f.subnet, "--accel="+strconv.FormatBool(f.accel), "--bridged")
	if f.guest != "" {
		argv = append(argv, "--guest", f.guest)
	}
	if f.noSnap {
		argv = append(argv, "--no-snapshot")
	}
	pid, err := p.Detach(argv)
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "compose %s: started in the background (pid %d); logs in %s; stop with 'ops compose down'\n", p.File.Name, pid, p.LogPath())
	return nil
}

// newComposeNetCmd is a project's network holder (compose.ServeNet), which
// up starts in a network namespace of its own (or, to serve only the ports
// a service's replicas share, in the host's) with the host ports as
// descriptors 3, 4, ...: it prints "ready" once it serves, then runs until
// down kills it. Its errors go to the project's net.log.
func newComposeNetCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "net DIR",
		Short:  "Hold a compose project's network namespace (started by ops compose up)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return compose.ServeNet(args[0], qemu.PasstBinary(), os.Stdout)
		},
	}
}
