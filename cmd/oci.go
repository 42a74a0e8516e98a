package cmd

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/packages"
	"github.com/opsdev/ops/pkgenv"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// registry returns registry options with a progress bar on a terminal;
// call done when the transfer is over.
func registry(app *App, insecure bool, label string) (packages.Registry, func()) {
	r := packages.Registry{Insecure: insecure}
	if !onTerminal(app) {
		return r, func() {}
	}
	ch := make(chan v1.Update, 16)
	finished := make(chan struct{})
	r.Progress = ch
	go func() {
		defer close(finished)
		var bar *progressbar.ProgressBar
		for u := range ch {
			if bar == nil && u.Total > 0 {
				bar = progressbar.DefaultBytes(u.Total, label)
			}
			if bar != nil {
				bar.Set64(u.Complete)
			}
		}
		if bar != nil {
			bar.Finish()
		}
	}()
	return r, func() { <-finished }
}

func newFromImageCmd(app *App) *cobra.Command {
	var opt pkgenv.FromImageOptions
	var insecure bool
	var archName string
	cmd := &cobra.Command{
		Use:   "from-image IMAGE",
		Short: "Make a local package from a container image (registry reference, docker-archive tarball or OCI layout)",
		Long: `Make a local package from a container image, without a Docker daemon:

  ops pkg from-image docker.io/library/redis:7 --name redis --version 7
  ops pkg from-image ./image.tar --name app --version 1      (docker save output)
  ops pkg from-image ./oci-layout-dir --name app --version 1

The layers are flattened in order (whiteouts and opaque folders applied) into
the package's sysroot/. The program and its arguments come from ENTRYPOINT and
CMD (an entrypoint script is skipped: a unikernel has no shell), the environment
and working folder from the image config. --minimal keeps only the program, its
libraries and the paths named with --include. Registry credentials come from
~/.docker/config.json.

--arch (default: this machine's) picks linux/<arch> from a multi-platform image
and refuses a single image of another platform; the package is a local package
for that architecture.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := app.packagesFor(archName)
			if err != nil {
				return err
			}
			ctx := app.Context()
			// Image layers are read lazily while they are flattened, so
			// there is no single transfer to show progress for.
			reg := e.Registry
			reg.Insecure = insecure
			img, err := reg.LoadImage(ctx, args[0])
			if err != nil {
				return err
			}
			dir, note, err := pkgenv.FromImage(e.Store, img, opt)
			if err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintln(app.Stderr, note)
			}
			fmt.Fprintf(app.Stdout, "local package %s:%s in %s\n", opt.Name, opt.Version, dir)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opt.Name, "name", "", "package name (required)")
	fs.StringVar(&opt.Version, "version", "", "package version (required)")
	fs.StringVar(&opt.Program, "program", "", "the program to run (default: from ENTRYPOINT and CMD)")
	stringArrayVarP(fs, &opt.Args, "args", "a", "arguments replacing the image's CMD (repeatable)")
	fs.BoolVar(&opt.Minimal, "minimal", false, "keep only the program, its libraries and --include paths")
	stringArrayVarP(fs, &opt.Include, "include", "", "a path in the image to keep with --minimal (repeatable)")
	insecureFlag(fs, &insecure)
	pkgArchFlag(fs, &archName)
	return cmd
}

func newPkgPushCmd(app *App) *cobra.Command {
	var local, insecure bool
	var archName string
	cmd := &cobra.Command{
		Use:   "push NAME REFERENCE",
		Short: "Push a package of one architecture (--arch) to a registry as a single-layer OCI image of that platform",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := app.packagesFor(archName)
			if err != nil {
				return err
			}
			dir, p, err := e.Resolve(app.Context(), args[0], local)
			if err != nil {
				return err
			}
			img, err := packages.PackageImage(dir, p, e.Arch())
			if err != nil {
				return err
			}
			return push(app, insecure, "pushing "+p.Ref(), img, args[1])
		},
	}
	localFlag(cmd.Flags(), &local)
	insecureFlag(cmd.Flags(), &insecure)
	pkgArchFlag(cmd.Flags(), &archName)
	return cmd
}

func newPkgPullCmd(app *App) *cobra.Command {
	var insecure bool
	var archName string
	cmd := &cobra.Command{
		Use:   "pull REFERENCE",
		Short: "Pull a package pushed with 'ops pkg push' into the local packages of one architecture (--arch)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := app.packagesFor(archName)
			if err != nil {
				return err
			}
			ctx := app.Context()
			reg := e.Registry
			reg.Insecure = insecure
			p, dir, err := reg.PullPackage(ctx, args[0], e.Store)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "local package %s in %s\n", p.Ref(), dir)
			return nil
		},
	}
	insecureFlag(cmd.Flags(), &insecure)
	pkgArchFlag(cmd.Flags(), &archName)
	return cmd
}

func newImagePushCmd(app *App) *cobra.Command {
	var insecure bool
	cmd := &cobra.Command{
		Use:   "push IMAGE REFERENCE",
		Short: "Push a built Nanos disk image as a KubeVirt containerDisk OCI image",
		Long: `Push a built Nanos disk image (name or path) to a registry as a single-layer
OCI image holding the disk at /disk/<name>.img, as KubeVirt's containerDisk
expects, for the platform of its kernel (linux/amd64 or linux/arm64). The
README shows the KubeVirt VirtualMachine to run it.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := imageFile(app, args[0])
			if err != nil {
				return err
			}
			a, err := diskArch(app, p)
			if err != nil {
				return err
			}
			img, err := packages.DiskImage(p, a)
			if err != nil {
				return err
			}
			return push(app, insecure, "pushing "+args[0], img, args[1])
		},
	}
	insecureFlag(cmd.Flags(), &insecure)
	return cmd
}

// push writes img to ref, with progress on a terminal, and prints the
// pushed digest reference.
func push(app *App, insecure bool, label string, img v1.Image, ref string) error {
	ctx := app.Context()
	reg, done := registry(app, insecure, label)
	d, err := reg.Push(ctx, img, ref)
	if err != nil {
		return err
	}
	done() // the registry client closes the progress channel when it is done
	fmt.Fprintln(app.Stdout, d)
	return nil
}

// diskArch is the architecture of a Nanos disk image, as its first
// sector tells it (lepton's BuiltImage); anything else is one line.
func diskArch(app *App, image string) (arch.Arch, error) {
	home, err := app.Home()
	if err != nil {
		return "", err
	}
	_, _, a, err := home.BuiltImage(image, "nanos")
	if err != nil {
		return "", fmt.Errorf("%s: not a Nanos disk image (the Linux guest's initramfs is not a disk): %w", image, err)
	}
	return a, nil
}
