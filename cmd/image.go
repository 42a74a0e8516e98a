package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

func newImageCmd(app *App) *cobra.Command {
	img := &cobra.Command{Use: "image", Short: "List and inspect built images"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List built images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := lepton.DefaultHome()
			if err != nil {
				return err
			}
			ents, err := os.ReadDir(home.ImagesDir())
			if err != nil && !os.IsNotExist(err) {
				return err
			}
			type row struct {
				Name string `json:"name"`
				Path string `json:"path"`
				Size int64  `json:"size"`
			}
			var rows []row
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
					continue
				}
				info, err := e.Info()
				if err != nil {
					continue
				}
				rows = append(rows, row{e.Name(), filepath.Join(home.ImagesDir(), e.Name()), info.Size()})
			}
			if asJSON {
				return json.NewEncoder(app.Stdout).Encode(rows)
			}
			tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIZE\tPATH")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Name, r.Size, r.Path)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVarP(&asJSON, "json", "j", false, "print JSON")
	tree := &cobra.Command{
		Use:   "tree IMAGE",
		Short: "Print the manifest and file tree of a Nanos image (path or name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rd, f, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Fprintln(app.Stdout, opsfs.Format(rd.Root))
			return nil
		},
	}
	cat := &cobra.Command{
		Use:   "cat IMAGE PATH",
		Short: "Print a file from a Nanos image",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rd, f, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
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
		},
	}
	ls := &cobra.Command{
		Use:   "ls IMAGE [PATH]",
		Short: "List a folder of a Nanos image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rd, f, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			p := "/"
			if len(args) == 2 {
				p = args[1]
			}
			n, err := rd.Lookup(p)
			if err != nil {
				return err
			}
			ch := n.Tuple("children")
			if ch == nil {
				return fmt.Errorf("%s is not a folder", p)
			}
			for _, k := range ch.Keys() {
				c := ch.Tuple(k)
				switch {
				case c != nil && c.Tuple("children") != nil:
					fmt.Fprintln(app.Stdout, k+"/")
				case c != nil:
					if t, ok := c.Get("linktarget"); ok {
						fmt.Fprintf(app.Stdout, "%s -> %s\n", k, opsfs.Format(t))
					} else {
						l, _ := c.Uint("filelength")
						fmt.Fprintf(app.Stdout, "%s\t%d\n", k, l)
					}
				}
			}
			return nil
		},
	}
	img.AddCommand(list, tree, cat, ls, newImagePushCmd(app))
	return img
}

// openImage opens a Nanos image's root filesystem; close the returned
// file when done with the reader.
func openImage(nameOrPath string) (*opsfs.Reader, *os.File, error) {
	p := nameOrPath
	if !strings.Contains(p, "/") {
		home, err := lepton.DefaultHome()
		if err != nil {
			return nil, nil, err
		}
		if p, err = home.ImagePath(nameOrPath); err != nil {
			return nil, nil, err
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	_, root, err := opsfs.OpenNanosDisk(f, st.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	return root, f, nil
}

func openNanosDisk(f *os.File, size int64) (*opsfs.Reader, *opsfs.Reader, error) {
	return opsfs.OpenNanosDisk(f, size)
}
