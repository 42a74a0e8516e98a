package cmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

// localTarget accepts nanovms/ops's -t for the commands that work on the
// images in the ops home only.
func localTarget(t string) error {
	if t == "" || t == "onprem" {
		return nil
	}
	return fmt.Errorf("-t %s: this command works on the images in the ops home (onprem); list and delete cloud images with the cloud's own tools", t)
}

func newImageDeleteCmd(app *App) *cobra.Command {
	var lru, olderThan, target string
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete [NAME...]",
		Short: "Delete built images by name, or those not written for a while (--lru 2w)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := localTarget(target); err != nil {
				return err
			}
			home, err := app.Home()
			if err != nil {
				return err
			}
			names := append([]string(nil), args...)
			for _, age := range []struct{ flag, v string }{{"--lru", lru}, {"--older-than", olderThan}} {
				if age.v == "" {
					continue
				}
				d, err := lepton.ParseAge(age.v)
				if err != nil {
					return fmt.Errorf("%s %w", age.flag, err)
				}
				old, err := home.ImagesOlderThan(time.Now().Add(-d))
				if err != nil {
					return err
				}
				names = appendNew(names, old...)
			}
			if len(names) == 0 {
				if len(args) == 0 && lru == "" && olderThan == "" {
					return errors.New("name the images to delete, or pass --lru AGE (2w, 30d, 36h)")
				}
				fmt.Fprintln(app.Stderr, "no images to delete")
				return nil
			}
			for _, n := range names {
				if err := home.DeleteImage(n); err != nil {
					return err
				}
				fmt.Fprintf(app.Stdout, "deleted %s\n", n)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&lru, "lru", "", "also delete images not written for this long: 2w, 30d, 3m, 1y or a duration such as 36h")
	fl.StringVar(&olderThan, "older-than", "", "same as --lru")
	fl.BoolVar(&yes, "assume-yes", false, "delete without asking (ops never asks)")
	fl.StringVarP(&target, "target-cloud", "t", "onprem", "onprem: the images in the ops home")
	return cmd
}

func newImageResizeCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "resize IMAGE SIZE",
		Short: "Grow a Nanos image's root filesystem, offline, to make the disk SIZE (e.g. 2G); boot it with 'ops run -s'",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := imageFile(app, args[0])
			if err != nil {
				return err
			}
			size, err := lepton.ParseSize(args[1])
			if err != nil {
				return err
			}
			if err := lepton.ResizeImage(p, size); err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "%s: %d bytes\n", p, size)
			return nil
		},
	}
}

func newImageCpCmd(app *App) *cobra.Command {
	var recursive, deref, bootfs bool
	cmd := &cobra.Command{
		Use:   "cp IMAGE SRC... DEST",
		Short: "Copy files out of a Nanos image",
		Args:  cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			dest := args[len(args)-1]
			srcs := args[1 : len(args)-1]
			st, err := os.Stat(dest)
			toDir := err == nil && st.IsDir()
			if len(srcs) > 1 && !toDir {
				return fmt.Errorf("%s is not a folder; copying several files needs one", dest)
			}
			return withImageFS(app, args[0], bootfs, func(rd *opsfs.Reader) error {
				for _, src := range srcs {
					d := dest
					if toDir {
						d = filepath.Join(dest, filepath.Base(src))
					}
					if err := lepton.CopyOut(rd, src, d, recursive, deref); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "copy folders recursively")
	cmd.Flags().BoolVarP(&deref, "dereference", "L", false, "copy what links in the image name, not the links")
	bootfsFlag(cmd, &bootfs)
	return cmd
}

func newImageEnvCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "env IMAGE",
		Short: "Print the environment in a Nanos image's manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImage(app, args[0], func(rd *opsfs.Reader) error {
				env := lepton.ImageEnv(rd)
				if len(env) == 0 {
					fmt.Fprintln(app.Stdout, "(none)")
				}
				sort.Slice(env, func(i, j int) bool { return env[i][0] < env[j][0] })
				for _, kv := range env {
					fmt.Fprintf(app.Stdout, "%s: %s\n", kv[0], kv[1])
				}
				return nil
			})
		},
	}
}
