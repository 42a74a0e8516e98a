package cmd

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/ociruntime"
	"github.com/spf13/cobra"
)

func newRuntimeCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "runtime",
		Short: "ops as an OCI runtime: Podman, Docker and containerd start images as unikernels",
	}
	c.AddCommand(newRuntimeInstallCmd(app))
	return c
}

func newRuntimeInstallCmd(app *App) *cobra.Command {
	var dir, home, guest, root string
	c := &cobra.Command{
		Use:   "install [--dir /usr/local/bin] [--home DIR] [--guest nanos|linux]",
		Short: "Make the ops-runtime link and print each engine's configuration",
		Long: `Makes DIR/ops-runtime, a link to this ops: run through it, ops is an OCI
runtime with runc's command line. Engines start a runtime with little of your
environment, so the ops home it builds images with (--home, default this ops's
own: ~/.ops or $OPS_HOME/.ops), the guest (--guest, default Nanos when a release
is installed, else Linux) and the state folder when an engine names none
(--root, default $XDG_RUNTIME_DIR/ops-runtime, else /run/ops-runtime) go into
DIR/ops-runtime.json beside the link. Then it prints how to tell Podman,
Docker, containerd and Kubernetes to use it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if self, err = filepath.EvalSymlinks(self); err != nil {
				return err
			}
			if home == "" {
				h, err := app.Home()
				if err != nil {
					return err
				}
				home = h.Dir
			}
			if home, err = filepath.Abs(home); err != nil {
				return err
			}
			if guest != "" {
				if err := lepton.CheckGuestName(guest); err != nil {
					return fmt.Errorf("--guest: %w", err)
				}
			}
			if root != "" && !filepath.IsAbs(root) {
				return fmt.Errorf("--root %q: name the state folder by an absolute path", root)
			}
			link, err := ociruntime.Install(dir, self, ociruntime.Config{Home: home, Guest: guest, Root: root})
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "%s -> %s\n%s: ops home %s\n\n%s", link, self, ociruntime.ConfigPath(link), home, ociruntime.EngineConfig(link))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "dir", "/usr/local/bin", "the folder the link goes in")
	f.StringVar(&home, "home", "", "the ops home containers' images are built with (the folder holding latest.txt and images/)")
	f.StringVar(&guest, "guest", "", "the guest every container boots: nanos or linux (default: Nanos when a release is installed)")
	f.StringVar(&root, "root", "", "the containers' state folder when the engine passes no --root")
	return c
}
