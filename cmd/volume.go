package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

func newVolumeCmd(app *App) *cobra.Command {
	v := &cobra.Command{
		Use:   "volume",
		Short: "Disks whose data outlives images and runs: create, list, delete, ls, cp",
		Long: `Volumes are disks kept in the ops home (volumes/NAME:UUID.raw, as nanovms/ops
keeps them) and mounted with --mounts VOLUME:/path[:ro] or "Mounts" in config.json.
A Nanos volume is a TFS filesystem; a Linux guest volume is ext4. Both are sparse.`,
	}
	v.AddCommand(newVolumeCreateCmd(app), newVolumeListCmd(app), newVolumeDeleteCmd(app), newVolumeLsCmd(app), newVolumeCpCmd(app))
	return v
}

func newVolumeCreateCmd(app *App) *cobra.Command {
	var size, seed, guest string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Make a volume: ops volume create pgdata -s 1G [-d ./seed] [--guest nanos|linux]",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := app.Home()
			if err != nil {
				return err
			}
			n, err := lepton.ParseSize(size)
			if err != nil {
				return fmt.Errorf("-s: %w", err)
			}
			format, err := lepton.VolumeFormatFor(home, guest)
			if err != nil {
				return fmt.Errorf("--guest: %w", err)
			}
			vol, err := home.Volumes().Create(args[0], n, seed, format)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "volume %s (%s, %s guest, %d MiB) in %s\n", vol.Name, vol.UUID, lepton.VolumeGuest(vol.Format), vol.Size>>20, vol.Path)
			return nil
		},
	}
	cmd.Flags().StringVarP(&size, "size", "s", "1G", "size, e.g. 512M or 10G (the file is sparse)")
	cmd.Flags().StringVarP(&seed, "data", "d", "", "a folder whose files the volume starts with")
	cmd.Flags().StringVar(&guest, "guest", "", "the guest that mounts it: nanos or linux (default: nanos when a release is installed)")
	return cmd
}

func newVolumeListCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List volumes: NAME UUID GUEST SIZE USED PATH",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := app.Home()
			if err != nil {
				return err
			}
			vols, err := home.Volumes().List()
			if err != nil {
				return err
			}
			if asJSON {
				type row struct {
					Name  string `json:"name"`
					UUID  string `json:"uuid"`
					Guest string `json:"guest"`
					Size  int64  `json:"size"`
					Used  int64  `json:"used"`
					Path  string `json:"path"`
				}
				rows := []row{}
				for _, v := range vols {
					rows = append(rows, row{v.Name, v.UUID, lepton.VolumeGuest(v.Format), v.Size, v.Used, v.Path})
				}
				return json.NewEncoder(app.Stdout).Encode(rows)
			}
			tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tUUID\tGUEST\tSIZE\tUSED\tPATH")
			for _, v := range vols {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%dM\t%dM\t%s\n", v.Name, v.UUID, lepton.VolumeGuest(v.Format), v.Size>>20, v.Used>>20, v.Path)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&asJSON, "json", "j", false, "print JSON")
	return cmd
}

func newVolumeDeleteCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete volumes that no running instance uses",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := app.Home()
			if err != nil {
				return err
			}
			for _, n := range args {
				if err := home.Volumes().Delete(n); err != nil {
					return err
				}
				fmt.Fprintf(app.Stdout, "volume %s deleted\n", n)
			}
			return nil
		},
	}
}

// withNanosVolume opens a Nanos volume's filesystem for reading.
func withNanosVolume(app *App, name string, fn func(rd *opsfs.Reader) error) error {
	home, err := app.Home()
	if err != nil {
		return err
	}
	return home.Volumes().ReadTFS(name, fn)
}

func newVolumeLsCmd(app *App) *cobra.Command {
	var long bool
	cmd := &cobra.Command{
		Use:   "ls VOLUME [PATH]",
		Short: "List a folder of a Nanos volume",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := "/"
			if len(args) == 2 {
				p = args[1]
			}
			return withNanosVolume(app, args[0], func(rd *opsfs.Reader) error {
				return listDir(app.Stdout, rd, p, long)
			})
		},
	}
	cmd.Flags().BoolVarP(&long, "long-format", "l", false, "one entry a line with its kind and size")
	return cmd
}

func newVolumeCpCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "cp VOLUME:PATH DEST",
		Short: "Copy a file out of a Nanos volume: ops volume cp pgdata:/dump.rdb ./",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, src, ok := strings.Cut(args[0], ":")
			if !ok || src == "" {
				return fmt.Errorf("%q: write VOLUME:/path", args[0])
			}
			return withNanosVolume(app, name, func(rd *opsfs.Reader) error {
				n, err := rd.Lookup(src)
				if err != nil {
					return err
				}
				b, err := rd.ReadFile(n)
				if err != nil {
					return fmt.Errorf("%s: %w", src, err)
				}
				dest := args[1]
				if st, err := os.Stat(dest); err == nil && st.IsDir() {
					dest = filepath.Join(dest, filepath.Base(src))
				}
				return fileutil.WriteAtomic(dest, b, 0o644)
			})
		},
	}
}
