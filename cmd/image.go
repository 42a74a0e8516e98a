package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"text/tabwriter"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

func newImageCmd(app *App) *cobra.Command {
	img := &cobra.Command{Use: "image", Short: "Create images for clouds and hypervisors; list and inspect built images"}
	img.AddCommand(newImageCreateCmd(app), newImageListCmd(app), newImageTreeCmd(app), newImageCatCmd(app), newImageLsCmd(app), newImagePushCmd(app),
		newImageDeleteCmd(app), newImageResizeCmd(app), newImageCpCmd(app), newImageEnvCmd(app))
	return img
}

func newImageListCmd(app *App) *cobra.Command {
	var asJSON bool
	var target string
	list := &cobra.Command{
		Use:   "list",
		Short: "List built images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := localTarget(target); err != nil {
				return err
			}
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
			fmt.Fprintln(tw, "NAME\tSIZE\tSNAPSHOT\tPATH")
			for _, r := range images {
				snap := "-"
				if r.Snapshot > 0 {
					snap = fmt.Sprintf("%dM", (r.Snapshot+1<<20-1)>>20)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Name, r.Size, snap, r.Path)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVarP(&asJSON, "json", "j", false, "print JSON")
	list.Flags().StringVarP(&target, "target-cloud", "t", "onprem", "onprem: the images in the ops home (clouds list theirs with their own tools)")
	return list
}

func newImageTreeCmd(app *App) *cobra.Command {
	var bootfs, asJSON, manifest bool
	cmd := &cobra.Command{
		Use:   "tree IMAGE",
		Short: "Print the file tree of a Nanos image (path or name), as nanovms/ops does; --manifest: its whole manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImageFS(app, args[0], bootfs, func(rd *opsfs.Reader) error {
				switch {
				case manifest:
					_, err := fmt.Fprintln(app.Stdout, opsfs.Format(rd.Root))
					return err
				case asJSON:
					var files []string
					if err := walkImage(rd, "/", 0, func(p string, e opsfs.DirEntry, _ int) {
						if e.Kind != opsfs.KindDir {
							files = append(files, p)
						}
					}); err != nil {
						return err
					}
					return json.NewEncoder(app.Stdout).Encode(files)
				}
				fmt.Fprintln(app.Stdout, "/")
				return walkImage(rd, "/", 1, func(_ string, e opsfs.DirEntry, depth int) {
					line := strings.Repeat("|   ", depth) + e.Name
					if e.Kind == opsfs.KindSymlink {
						line += " -> " + e.Target
					}
					fmt.Fprintln(app.Stdout, line)
				})
			})
		},
	}
	bootfsFlag(cmd, &bootfs)
	cmd.Flags().BoolVar(&asJSON, "json", false, "the paths of the files (not folders), as a JSON list")
	cmd.Flags().BoolVar(&manifest, "manifest", false, "print the root tuple: the manifest (program, arguments, environment) with every file's extents")
	return cmd
}

// walkImage calls fn for every entry below the folder p of an image, in
// order, folders before what they hold, with its path and depth (depth
// for p's own entries).
func walkImage(rd *opsfs.Reader, p string, depth int, fn func(p string, e opsfs.DirEntry, depth int)) error {
	ents, err := rd.ReadDir(p)
	if err != nil {
		return err
	}
	for _, e := range ents {
		q := path.Join(p, e.Name)
		fn(q, e, depth)
		if e.Kind == opsfs.KindDir {
			if err := walkImage(rd, q, depth+1, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func newImageCatCmd(app *App) *cobra.Command {
	var bootfs bool
	cmd := &cobra.Command{
		Use:   "cat IMAGE PATH",
		Short: "Print a file from a Nanos image (links inside it followed)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImageFS(app, args[0], bootfs, func(rd *opsfs.Reader) error {
				b, err := lepton.ReadImageFile(rd, args[1])
				if err != nil {
					return err
				}
				_, err = app.Stdout.Write(b)
				return err
			})
		},
	}
	bootfsFlag(cmd, &bootfs)
	return cmd
}

func newImageLsCmd(app *App) *cobra.Command {
	var bootfs, long bool
	cmd := &cobra.Command{
		Use:   "ls IMAGE [PATH]",
		Short: "List a folder of a Nanos image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := "/"
			if len(args) == 2 {
				p = args[1]
			}
			return withImageFS(app, args[0], bootfs, func(rd *opsfs.Reader) error {
				return listDir(app.Stdout, rd, p, long)
			})
		},
	}
	bootfsFlag(cmd, &bootfs)
	cmd.Flags().BoolVarP(&long, "long-format", "l", false, "one entry a line with its kind and size")
	return cmd
}

// listDir prints a TFS folder (image ls, volume ls): each name (folders
// end in /), or with long each entry's kind, size and link target.
func listDir(w io.Writer, rd *opsfs.Reader, p string, long bool) error {
	ents, err := rd.ReadDir(p)
	if err != nil {
		return err
	}
	for _, e := range ents {
		switch {
		case !long && e.Kind == opsfs.KindDir:
			fmt.Fprintln(w, e.Name+"/")
		case !long:
			fmt.Fprintln(w, e.Name)
		case e.Kind == opsfs.KindDir:
			fmt.Fprintf(w, "d %10s %s/\n", "-", e.Name)
		case e.Kind == opsfs.KindSymlink:
			fmt.Fprintf(w, "l %10s %s -> %s\n", "-", e.Name, e.Target)
		default:
			fmt.Fprintf(w, "- %10d %s\n", e.Size, e.Name)
		}
	}
	return nil
}

// withImage opens a Nanos image (name or path) and hands its root
// filesystem to fn.
func withImage(app *App, nameOrPath string, fn func(rd *opsfs.Reader) error) error {
	return withImageFS(app, nameOrPath, false, fn)
}

// bootfsFlag is --bootfs, on every command that reads inside an image.
func bootfsFlag(cmd *cobra.Command, bootfs *bool) {
	cmd.Flags().BoolVar(bootfs, "bootfs", false, "read the boot filesystem (kernel, klibs) instead of the root filesystem")
}

// withImageFS opens a Nanos image (name or path) and hands fn its root
// filesystem, or its boot filesystem with bootfs.
func withImageFS(app *App, nameOrPath string, bootfs bool, fn func(rd *opsfs.Reader) error) error {
	home, err := app.Home()
	if err != nil {
		return err
	}
	return home.ReadImage(nameOrPath, bootfs, fn)
}

// imageFile resolves an image argument: a plain name means
// <ops home>/images/NAME, anything with a slash is a path.
func imageFile(app *App, nameOrPath string) (string, error) {
	home, err := app.Home()
	if err != nil {
		return "", err
	}
	return home.FindImage(nameOrPath)
}
