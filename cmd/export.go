package cmd

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/opsdev/ops/imgfmt"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

// outputs is what `ops build` and `ops image create` wrote.
type outputs struct {
	built    *lepton.Built
	exported *lepton.Exported // nil for raw
	name     string           // the image's name
	uefi     bool
}

// buildFormat builds the raw image and, for another format, writes it in
// that format. With a format other than raw, -o names the converted file
// and the raw image stays in the ops home, where an unchanged program
// reuses it.
func buildFormat(app *App, cmd *cobra.Command, f *buildFlags, args []string, format imgfmt.Format) (*outputs, error) {
	c, err := f.configFrom(cmd.Flags())
	if err != nil {
		return nil, err
	}
	configNotices(app, c)
	in, name, err := imageInput(app, c, f, args)
	if err != nil {
		return nil, err
	}
	home, err := app.Home()
	if err != nil {
		return nil, err
	}
	t := lepton.Target{Output: f.output, DefaultName: name}
	if format != imgfmt.Raw {
		t.Output = ""
	}
	in.OpsVersion = Version
	b, err := app.builder.Build(home, in, t)
	if err != nil {
		return nil, err
	}
	if b.Note != "" {
		fmt.Fprintln(app.Stderr, b.Note)
	}
	reportPlan(app, b.Plan, c.RunConfig.Verbose, true)
	o := &outputs{built: b, name: name, uefi: c.Uefi}
	if c.RunConfig.ImageName != "" {
		o.name = c.RunConfig.ImageName
	}
	if format != imgfmt.Raw {
		out := f.output
		if out == "" {
			out = lepton.ExportPath(b, format)
		}
		if o.exported, err = lepton.Export(b, format, out); err != nil {
			return nil, err
		}
	}
	if c.RunConfig.Verbose {
		state := "built"
		if b.Reused {
			state = "unchanged, reused"
		}
		fmt.Fprintf(app.Stderr, "%s image, %d bytes, %s in %v\n", b.Guest.Name(), b.Size, state, b.Took.Round(time.Millisecond))
		if e := o.exported; e != nil {
			fmt.Fprintf(app.Stderr, "%s written, %d bytes, in %v\n", e.Format, e.Size, e.Took.Round(time.Millisecond))
		}
	}
	return o, nil
}

// imageInput is what an image is built from: a package (image create
// --package, -l for a local one) or an ELF.
func imageInput(app *App, c *lepton.Config, f *buildFlags, args []string) (lepton.PlanInput, string, error) {
	if f.pkg == "" {
		return elfInput(c, args)
	}
	if len(args) > 0 {
		return lepton.PlanInput{}, "", fmt.Errorf("give either an ELF (%s) or --package %s, not both", args[0], f.pkg)
	}
	in, p, err := packageInput(app, c, f.pkg, f.pkgLocal)
	return in, p.DirName(), err
}

// path is the file the user asked for: the converted one, else the raw.
func (o *outputs) path() string {
	if o.exported != nil {
		return o.exported.Path
	}
	return o.built.Path
}

// files lists every file written (the raw image even when reused, as a CI
// step may upload it too) with its size and SHA-256.
func (o *outputs) files() ([]lepton.FileSum, error) {
	raw, err := lepton.SumFile(o.built.Path, o.built.Guest.ImageFormat())
	if err != nil {
		return nil, err
	}
	out := []lepton.FileSum{raw}
	if e := o.exported; e != nil {
		s, err := lepton.SumFile(e.Path, string(e.Format))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// printJSON prints the result for CI: the image, and every file with its
// size and SHA-256. extra adds keys (image create's next steps).
func (o *outputs) printJSON(app *App, extra map[string]any) error {
	files, err := o.files()
	if err != nil {
		return err
	}
	b := o.built
	v := map[string]any{
		"image": o.path(), "guest": b.Guest.Name(), "size": b.Size,
		"reused": b.Reused, "milliseconds": b.Took.Milliseconds(), "files": files,
	}
	if o.exported != nil {
		v["format"] = o.exported.Format
		v["size"] = o.exported.Size
		v["raw"] = b.Path
	}
	for k, x := range extra {
		v[k] = x
	}
	return json.NewEncoder(app.Stdout).Encode(v)
}

func newImageCreateCmd(app *App) *cobra.Command {
	f := &buildFlags{}
	var asJSON bool
	var target string
	cmd := &cobra.Command{
		Use:   "create [ELF] [-t TARGET]",
		Short: "Build an image in the format a cloud or hypervisor imports, and print the commands that import it",
		Long: "Build an image in the format TARGET imports (" + targetHelp() + ") and print the commands " +
			"that upload and register it. Nothing that needs credentials is run.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := imgfmt.ParseTarget(target)
			if err != nil {
				return fmt.Errorf("-t: %w", err)
			}
			o, err := buildFormat(app, cmd, f, args, t.Format)
			if err != nil {
				return err
			}
			steps := imgfmt.NextSteps(t, o.name, o.path(), o.uefi, o.built.Guest.Arch())
			if asJSON {
				if steps == nil {
					steps = []string{}
				}
				return o.printJSON(app, map[string]any{"target": t.Name, "next": steps})
			}
			fmt.Fprintln(app.Stdout, o.path())
			if len(steps) > 0 {
				fmt.Fprintln(app.Stderr, "next, with your credentials:")
				for _, s := range steps {
					fmt.Fprintln(app.Stderr, "  "+s)
				}
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVarP(&f.pkg, "package", "p", "", "build the image from a package (namespace/name:version) instead of an ELF")
	localFlag(cmd.Flags(), &f.pkgLocal)
	cmd.Flags().StringVarP(&target, "target", "t", "onprem", "where the image goes: "+targetHelp())
	cmd.Flags().BoolVarP(&asJSON, "json", "j", false, "print the files written (size, SHA-256) and the next commands as JSON")
	return cmd
}

func targetHelp() string {
	s := ""
	for i, n := range imgfmt.TargetNames() {
		t, _ := imgfmt.ParseTarget(n)
		if i > 0 {
			s += ", "
		}
		s += n + " (" + string(t.Format) + ")"
	}
	return s
}
