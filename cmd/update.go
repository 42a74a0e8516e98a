package cmd

import (
	"fmt"
	"os"

	"github.com/opsdev/ops/release"
	"github.com/spf13/cobra"
)

func newUpdateCmd(app *App) *cobra.Command {
	var from, version, url string
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Install a Nanos kernel release (downloaded, or --from a local file or folder)",
		Long: `Install a Nanos kernel release into the ops home (~/.ops, or $OPS_HOME/.ops).

  ops update                       download the newest release and install it
  ops update --from FILE.tar.gz    install a release archive offline
  ops update --from DIR            install a folder holding kernel.img, boot.img, klibs/

Releases are checked before they are installed (kernel.img must be an x86-64
ELF, boot.img must carry its boot signature and filesystem region record),
installed atomically, and recorded in latest.txt.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := app.Home()
			if err != nil {
				return err
			}
			if from != "" {
				r, err := home.Releases().Install(from, version)
				if err != nil {
					return err
				}
				fmt.Fprintf(app.Stdout, "installed Nanos %s in %s\n", r.Version, r.Dir)
				return nil
			}
			if url == "" {
				url = os.Getenv("OPS_RELEASE_URL")
			}
			if url == "" {
				url = release.DefaultURL
			}
			ctx := app.Context()
			d := release.Downloader{BaseURL: url}
			d.Progress = progress(app, "downloading Nanos")
			if version == "" {
				if version, err = d.LatestVersion(ctx); err != nil {
					return err
				}
			}
			r, verified, err := d.Install(ctx, home.Releases(), version)
			if err != nil {
				return err
			}
			check := "archive checked"
			if verified {
				check = "SHA-256 verified"
			}
			fmt.Fprintf(app.Stdout, "installed Nanos %s in %s (%s)\n", r.Version, r.Dir, check)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "install from a release archive or folder instead of downloading")
	cmd.Flags().StringVar(&version, "version", "", "release version (default: from the file name, or the newest)")
	cmd.Flags().StringVar(&url, "url", "", "release server base URL (default $OPS_RELEASE_URL, else the Nanos release server)")
	return cmd
}
