package cmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
	"github.com/opsdev/ops/pkgenv"
	"github.com/spf13/cobra"
)

func newPkgDescribeCmd(app *App) *cobra.Command {
	return packageCmd(app, "describe NAME", "Describe a package: its README, else its manifest's description",
		func(dir string, p packages.Package, name string) error {
			if b, err := os.ReadFile(filepath.Join(dir, "README.md")); err == nil {
				fmt.Fprintf(app.Stdout, "Information for %s package:\n%s", name, b)
				return nil
			}
			m, err := packages.ReadMeta(dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "%s\nversion: %s\nlanguage: %s\ndescription: %s\n(the package has no README.md)\n",
				p.Ref(), m.Version, m.Language, m.Description)
			return nil
		})
}

// packageCmd is a command on one package, NAME (-l: a local package):
// fn gets the package's folder, found or downloaded.
func packageCmd(app *App, use, short string, fn func(dir string, p packages.Package, name string) error) *cobra.Command {
	var local bool
	var archName string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, dir, p, err := app.resolvePackage(&lepton.Config{Arch: archName}, args[0], local)
			if err != nil {
				return err
			}
			return fn(dir, p, args[0])
		},
	}
	localFlag(cmd.Flags(), &local)
	pkgArchFlag(cmd.Flags(), &archName)
	return cmd
}

func newPkgDeleteCmd(app *App) *cobra.Command {
	var local bool
	var archName string
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a local package (-l), or the downloaded copy of a package, of one architecture (--arch)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := app.packagesFor(archName)
			if err != nil {
				return err
			}
			dir, err := e.Installed(args[0], local)
			if err != nil {
				return err
			}
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "deleted %s\n", dir)
			return nil
		},
	}
	localFlag(cmd.Flags(), &local)
	pkgArchFlag(cmd.Flags(), &archName)
	return cmd
}

func newFromPkgCmd(app *App) *cobra.Command {
	f := &buildFlags{}
	var local bool
	var name, version string
	cmd := &cobra.Command{
		Use:   "from-pkg OLD --name NEW --version V",
		Short: "Make a local package from another package, with your Args, Env and Nanos options added",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" || version == "" {
				return errors.New("pass --name and --version for the new package")
			}
			c, err := f.configFrom(cmd.Flags())
			if err != nil {
				return err
			}
			e, src, _, err := app.resolvePackage(c, args[0], local)
			if err != nil {
				return err
			}
			dir, err := pkgenv.Clone(e.Store, src, name, version, c)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "local package %s:%s in %s\n", name, version, dir)
			return nil
		},
	}
	f.register(cmd.Flags())
	localFlag(cmd.Flags(), &local)
	cmd.Flags().StringVar(&name, "name", "", "the new package's name (required)")
	cmd.Flags().StringVar(&version, "version", "", "the new package's version (required)")
	return cmd
}
