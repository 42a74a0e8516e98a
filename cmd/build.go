package cmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opsdev/ops/imgfmt"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

// elfInput is the plan input for an ELF named on the command line (or by
// Program in config.json), with the default image name.
func elfInput(c *lepton.Config, args []string) (lepton.PlanInput, string, error) {
	prog := c.Program
	if len(args) > 0 {
		prog = args[0]
	}
	if prog == "" {
		return lepton.PlanInput{}, "", errors.New("name the program to run: ops run ./program (or set Program in config.json)")
	}
	wd, err := os.Getwd()
	if err != nil {
		return lepton.PlanInput{}, "", err
	}
	argv0 := prog
	if c.Program != "" && filepath.Clean(c.Program) == filepath.Clean(prog) {
		argv0 = c.Program
	}
	return lepton.PlanInput{Config: c, Program: prog, Dir: wd, Argv: []string{argv0}}, filepath.Base(prog), nil
}

// reportPlan says what ops added to the image on its own (with -v), and
// which libraries that ELF files in the image need were found nowhere
// (warn: always for a build; with -v or --show-warnings for a run).
func reportPlan(app *App, p *lepton.Plan, verbose, warn bool) {
	if p == nil {
		return
	}
	if verbose && len(p.Defaults) > 0 {
		fmt.Fprintf(app.Stderr, "added by default: %s (NoDefaults in config.json turns them off)\n", strings.Join(p.Defaults, " "))
	}
	if verbose && len(p.Libs) > 0 {
		fmt.Fprintf(app.Stderr, "libraries for other ELF files in the image: %s\n", strings.Join(p.Libs, " "))
	}
	if verbose || warn {
		for _, u := range p.Unresolved {
			fmt.Fprintf(app.Stderr, "ops: warning: library %s is in neither the image nor the host; add it with Files or Dirs if it is loaded\n", u)
		}
	}
}

func newBuildCmd(app *App) *cobra.Command {
	f := &buildFlags{}
	var asJSON bool
	var format string
	cmd := &cobra.Command{
		Use:   "build [ELF]",
		Short: "Build a bootable image from an ELF program without running it",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ft, err := imgfmt.ParseFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			o, err := buildFormat(app, cmd, f, args, ft)
			if err != nil {
				return err
			}
			if asJSON {
				return o.printJSON(app, nil)
			}
			fmt.Fprintln(app.Stdout, o.path())
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVarP(&asJSON, "json", "j", false, "print the result as JSON, with every file written, its size and SHA-256")
	cmd.Flags().StringVar(&format, "format", "raw", "image format: raw, qcow2, vmdk (stream-optimised), vhd (fixed), vhdx or gcp (tar.gz); -o names that file")
	return cmd
}
