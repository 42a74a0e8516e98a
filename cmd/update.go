package cmd

import (
	"fmt"
	"os"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/release"
	"github.com/spf13/cobra"
)

func newUpdateCmd(app *App) *cobra.Command {
	var from, version, url, archName string
	var arm bool
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Install a Nanos kernel release (downloaded, or --from a local file or folder)",
		Long: `Install a Nanos kernel release into the ops home (~/.ops, or $OPS_HOME/.ops).

  ops update                       download the newest release and install it
  ops update --from FILE.tar.gz    install a release archive offline
  ops update --from DIR            install a folder holding kernel.img, boot.img, klibs/
  ops update --arch arm64          the arm64 release (nanos-release-linux-VERSION-virt.tar.gz)

Releases are checked before they are installed (kernel.img must be an ELF of
the architecture, an x86-64 release's boot.img must carry its boot signature
and filesystem region record), installed atomically, and recorded in
latest.txt. arm64 releases go to <ops home>/VERSION-arm, as nanovms/ops keeps
them (--arm is its spelling of --arch arm64).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := app.Home()
			if err != nil {
				return err
			}
			if arm {
				archName = "arm64"
			}
			a, err := arch.Parse(archName)
			if err != nil {
				return fmt.Errorf("--arch: %w", err)
			}
			store := home.Releases(a)
			if from != "" {
				r, err := store.Install(from, version)
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
			r, verified, err := d.Install(ctx, store, version)
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
	cmd.Flags().StringVar(&archName, "arch", "", "the release's architecture: amd64 or arm64 (default: this machine's)")
	cmd.Flags().BoolVar(&arm, "arm", false, "the arm64 release (nanovms/ops's flag; --arch arm64)")
	cmd.Flags().StringVar(&url, "url", "", "release server base URL (default $OPS_RELEASE_URL, else the Nanos release server)")
	return cmd
}
