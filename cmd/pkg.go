package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
	"github.com/opsdev/ops/pkgenv"
	"github.com/spf13/cobra"
)

func newPkgCmd(app *App) *cobra.Command {
	pkg := &cobra.Command{Use: "pkg", Short: "Language runtimes and other packages: list, search, get, load, contents, describe, delete, from-run, from-pkg, add"}
	pkg.AddCommand(newPkgListCmd(app, "list"), newPkgSearchCmd(app), newPkgGetCmd(app), newPkgContentsCmd(app),
		newLoadCmd(app), newFromRunCmd(app), newPkgAddCmd(app), newFromImageCmd(app), newPkgPushCmd(app), newPkgPullCmd(app),
		newPkgDescribeCmd(app), newPkgDeleteCmd(app), newFromPkgCmd(app))
	return pkg
}

func newPkgListCmd(app *App, use string) *cobra.Command {
	var local, asJSON bool
	var search, archName string
	cmd := &cobra.Command{
		Use:   use,
		Short: "List the packages for one architecture (--arch): NAMESPACE NAME VERSION LANGUAGE ARCH DESCRIPTION",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := app.packagesFor(archName)
			if err != nil {
				return err
			}
			var pkgs []packages.Package
			if local {
				pkgs, err = e.Store.Local()
			} else {
				pkgs, err = e.Index(app.Context())
			}
			if err != nil {
				return err
			}
			if search != "" {
				re, err := regexp.Compile(search)
				if err != nil {
					return fmt.Errorf("-s %q: %w", search, err)
				}
				var keep []packages.Package
				for _, p := range pkgs {
					if re.MatchString(p.Name) || re.MatchString(p.Namespace+"/"+p.Name) {
						keep = append(keep, p)
					}
				}
				pkgs = keep
			}
			return printPackages(app, pkgs, asJSON)
		},
	}
	localFlag(cmd.Flags(), &local)
	cmd.Flags().StringVarP(&search, "search", "s", "", "only names matching this regular expression")
	cmd.Flags().BoolVarP(&asJSON, "json", "j", false, "print JSON")
	pkgArchFlag(cmd.Flags(), &archName)
	return cmd
}

func printPackages(app *App, pkgs []packages.Package, asJSON bool) error {
	sort.SliceStable(pkgs, func(i, j int) bool {
		if pkgs[i].Namespace+pkgs[i].Name != pkgs[j].Namespace+pkgs[j].Name {
			return pkgs[i].Namespace+pkgs[i].Name < pkgs[j].Namespace+pkgs[j].Name
		}
		return packages.VersionLess(pkgs[i].Version, pkgs[j].Version)
	})
	if asJSON {
		if pkgs == nil {
			pkgs = []packages.Package{}
		}
		return json.NewEncoder(app.Stdout).Encode(pkgs)
	}
	tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tVERSION\tLANGUAGE\tARCH\tDESCRIPTION")
	for _, p := range pkgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, p.Version, p.Language, p.Arch, p.Description)
	}
	return tw.Flush()
}

func newPkgSearchCmd(app *App) *cobra.Command {
	var archName string
	cmd := &cobra.Command{
		Use:   "search TERM",
		Short: "Search the names, descriptions and languages of the packages for one architecture (--arch)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := app.packagesFor(archName)
			if err != nil {
				return err
			}
			pkgs, err := e.Index(app.Context())
			if err != nil {
				return err
			}
			term := strings.ToLower(args[0])
			var hits []packages.Package
			for _, p := range pkgs {
				if strings.Contains(strings.ToLower(p.Name), term) || strings.Contains(strings.ToLower(p.Description), term) ||
					strings.Contains(strings.ToLower(p.Language), term) {
					hits = append(hits, p)
				}
			}
			return printPackages(app, hits, false)
		},
	}
	pkgArchFlag(cmd.Flags(), &archName)
	return cmd
}

func newPkgGetCmd(app *App) *cobra.Command {
	var archName string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Download, verify and unpack a package (namespace/name:version) for one architecture (--arch)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := app.packagesFor(archName)
			if err != nil {
				return err
			}
			dir, p, err := e.Resolve(app.Context(), args[0], false)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "%s in %s\n", p.Ref(), dir)
			return nil
		},
	}
	pkgArchFlag(cmd.Flags(), &archName)
	return cmd
}

func newPkgContentsCmd(app *App) *cobra.Command {
	return packageCmd(app, "contents NAME", "List the files of a package", func(dir string, _ packages.Package, _ string) error {
		return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if rel == "." {
				return nil
			}
			if d.IsDir() {
				rel += "/"
			}
			fmt.Fprintln(app.Stdout, rel)
			return nil
		})
	})
}

// newLoadCmd is `ops pkg load` (and `ops load`): run a package's program
// with the run flags.
func newLoadCmd(app *App) *cobra.Command {
	f := &runFlags{}
	var local bool
	cmd := &cobra.Command{
		Use:   "load NAME",
		Short: "Run a package's program: ops pkg load node:20 -a hi.js",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.configFrom(cmd.Flags())
			if err != nil {
				return err
			}
			in, p, err := packageInput(app, c, args[0], local)
			if err != nil {
				return err
			}
			return runVM(app, f, c, in, p.DirName())
		},
	}
	f.register(cmd.Flags())
	localFlag(cmd.Flags(), &local)
	return cmd
}

func newFromRunCmd(app *App) *cobra.Command {
	var name, version, targetRoot, archName string
	cmd := &cobra.Command{
		Use:   "from-run ELF",
		Short: "Make a local package from a host program and the libraries it needs (for --arch, which the program must be built for)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := app.packagesFor(archName)
			if err != nil {
				return err
			}
			dir, err := pkgenv.FromRun(e.Store, args[0], name, version, &lepton.Config{TargetRoot: targetRoot})
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "local package %s:%s in %s\n", filepath.Base(strings.TrimSuffix(dir, "_"+version)), version, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "package name (default: the program's file name)")
	cmd.Flags().StringVar(&version, "version", "", "package version (required)")
	cmd.Flags().StringVar(&targetRoot, "target-root", "", "find libraries under this root folder")
	pkgArchFlag(cmd.Flags(), &archName)
	return cmd
}

func newPkgAddCmd(app *App) *cobra.Command {
	var name, version, archName string
	cmd := &cobra.Command{
		Use:   "add DIR|TARBALL",
		Short: "Import a package folder or tarball as a local package for --arch (its program must be built for it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := app.packagesFor(archName)
			if err != nil {
				return err
			}
			dir, err := e.AddLocal(args[0], name, version)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "local package in %s\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "package name (default: from the folder or file name)")
	cmd.Flags().StringVar(&version, "version", "", "package version (default: the manifest's Version)")
	pkgArchFlag(cmd.Flags(), &archName)
	return cmd
}
