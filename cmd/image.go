package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

func newImageCmd(app *App) *cobra.Command {
	img := &cobra.Command{Use: "image", Short: "Create images for clouds and hypervisors; list and inspect built images"}
	img.AddCommand(newImageCreateCmd(app), newImageListCmd(app), newImageTreeCmd(app), newImageCatCmd(app), newImageLsCmd(app), newImagePushCmd(app))
	return img
}

func newImageListCmd(app *App) *cobra.Command {
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List built images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := app.Home()
			if err != nil {
				return err
			}
			images, err := home.Images()
			if err != nil {
				return err
			}
			if asJSON {
				if images == nil {
					images = []lepton.ImageFile{}
				}
				return json.NewEncoder(app.Stdout).Encode(images)
			}
			tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIZE\tPATH")
			for _, r := range images {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Name, r.Size, r.Path)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVarP(&asJSON, "json", "j", false, "print JSON")
	return list
}

func newImageTreeCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "tree IMAGE",
		Short: "Print the manifest and file tree of a Nanos image (path or name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImage(app, args[0], func(rd *opsfs.Reader) error {
				_, err := fmt.Fprintln(app.Stdout, opsfs.Format(rd.Root))
				return err
			})
		},
	}
}

func newImageCatCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "cat IMAGE PATH",
		Short: "Print a file from a Nanos image",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImage(app, args[0], func(rd *opsfs.Reader) error {
				n, err := rd.Lookup(args[1])
				if err != nil {
					return err
				}
				b, err := rd.ReadFile(n)
				if err != nil {
					return fmt.Errorf("%s: %w", args[1], err)
				}
				_, err = app.Stdout.Write(b)
				return err
			})
		},
	}
}

func newImageLsCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "ls IMAGE [PATH]",
		Short: "List a folder of a Nanos image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := "/"
			if len(args) == 2 {
				p = args[1]
			}
			return withImage(app, args[0], func(rd *opsfs.Reader) error {
				return listDir(app.Stdout, rd, p)
			})
		},
	}
}

// withImage opens a Nanos image (name or path) and hands its root
// filesystem to fn.
func withImage(app *App, nameOrPath string, fn func(rd *opsfs.Reader) error) error {
	p, err := imageFile(app, nameOrPath)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	_, root, err := opsfs.OpenNanosDisk(f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return fn(root)
}

// imageFile resolves an image argument: a plain name means
// <ops home>/images/NAME, anything with a slash is a path.
func imageFile(app *App, nameOrPath string) (string, error) {
	if strings.Contains(nameOrPath, "/") {
		return nameOrPath, nil
	}
	home, err := app.Home()
	if err != nil {
		return "", err
	}
	return home.ImagePath(nameOrPath)
}
