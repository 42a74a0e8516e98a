package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opsdev/ops/guestinit/bin"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// buildFlags are the flags build and run share.
type buildFlags struct {
	config       string
	args         []string
	envs         []string
	imageName    string
	output       string
	nanosVersion string
	guest        string
	targetRoot   string
	verbose      bool
	json         bool
}

func (f *buildFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.config, "config", "c", "", "config.json to read")
	fs.StringArrayVarP(&f.args, "args", "a", nil, "program argument (repeatable)")
	fs.StringArrayVarP(&f.envs, "envs", "e", nil, "environment variable K=V (repeatable)")
	fs.StringVarP(&f.imageName, "imagename", "i", "", "image name (default: the program's file name)")
	fs.StringVarP(&f.output, "output", "o", "", "image path (default: <ops home>/images/<name>)")
	fs.StringVar(&f.nanosVersion, "nanos-version", "", "installed Nanos release to use (default: latest.txt)")
	fs.StringVar(&f.guest, "guest", "", "guest kernel: nanos or linux (default: nanos when a release is installed, else linux)")
	fs.StringVar(&f.targetRoot, "target-root", "", "find shared libraries in this root folder instead of /")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "say more, including the QEMU command line")
	fs.BoolVarP(&f.json, "json", "j", false, "print results as JSON")
}

// override sets *dst to v when the user set the flag name: flags win over
// config.json only when given.
func override[T any](fl *pflag.FlagSet, name string, dst *T, v T) {
	if fl.Changed(name) {
		*dst = v
	}
}

// loadConfig reads -c and merges the flags the user actually set over it.
func (f *buildFlags) loadConfig(cmd *cobra.Command) (*lepton.Config, error) {
	c, err := lepton.LoadConfig(f.config)
	if err != nil {
		return nil, err
	}
	fl := cmd.Flags()
	set := fl.Changed
	if set("args") {
		c.Args = append(c.Args, f.args...)
	}
	if set("envs") {
		if c.Env == nil {
			c.Env = map[string]string{}
		}
		for _, kv := range f.envs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("-e %q: write K=V", kv)
			}
			c.Env[k] = v
		}
	}
	override(fl, "imagename", &c.RunConfig.ImageName, f.imageName)
	override(fl, "nanos-version", &c.NanosVersion, f.nanosVersion)
	override(fl, "guest", &c.Guest, f.guest)
	override(fl, "target-root", &c.TargetRoot, f.targetRoot)
	override(fl, "verbose", &c.RunConfig.Verbose, f.verbose)
	if c.Guest != "" && c.Guest != lepton.GuestNanos && c.Guest != lepton.GuestLinux {
		return nil, fmt.Errorf("--guest %q: use nanos or linux", c.Guest)
	}
	return c, nil
}

// built is an image ready to boot.
type built struct {
	spec   lepton.ImageSpec
	result *lepton.BuildResult
	home   lepton.Home
	note   string // the one line saying which guest and why, when not the default
	took   time.Duration
}

// chooseGuest resolves the guest kernel: nanos when a release is
// installed (or Kernel and Boot are configured), else the Linux guest.
func chooseGuest(home lepton.Home, c *lepton.Config, spec *lepton.ImageSpec) (string, error) {
	nanos := func() error {
		if c.Kernel != "" && c.Boot != "" {
			spec.Nanos = lepton.NanosKernel{Kernel: c.Kernel, Boot: c.Boot, KlibDir: c.KlibDir}
			return nil
		}
		rel, err := home.Release(c.NanosVersion)
		if err != nil {
			return err
		}
		spec.Nanos = lepton.NanosKernel{Kernel: rel.Kernel, Boot: rel.Boot, KlibDir: rel.KlibDir}
		if c.Kernel != "" {
			spec.Nanos.Kernel = c.Kernel
		}
		if c.Boot != "" {
			spec.Nanos.Boot = c.Boot
		}
		if c.KlibDir != "" {
			spec.Nanos.KlibDir = c.KlibDir
		}
		return nil
	}
	linux := func() error {
		k, err := lepton.FindLinuxKernel(c.LinuxKernel, "/boot", "/lib/modules")
		if err != nil {
			return err
		}
		if err := home.PrepareBootKernel(k); err != nil {
			return err
		}
		init, err := bin.Init()
		if err != nil {
			return err
		}
		spec.Linux, spec.Init = k, init
		return nil
	}
	switch c.Guest {
	case lepton.GuestNanos:
		spec.Guest = lepton.GuestNanos
		if err := nanos(); err != nil {
			return "", fmt.Errorf("%w; install one with 'ops update' (or 'ops update --from FILE' offline), or use --guest linux", err)
		}
		return "", nil
	case lepton.GuestLinux:
		spec.Guest = lepton.GuestLinux
		return "", linux()
	}
	nerr := nanos()
	if nerr == nil {
		spec.Guest = lepton.GuestNanos
		return "", nil
	}
	if !errors.Is(nerr, lepton.ErrNoRelease) {
		return "", nerr
	}
	if lerr := linux(); lerr != nil {
		if errors.Is(lerr, lepton.ErrNoLinuxKernel) {
			return "", errors.New("no guest kernel: no Nanos release is installed (run 'ops update', or 'ops update --from FILE' offline) and no Linux kernel was found for the Linux guest (run 'make deps' or apt-get install linux-image-cloud-amd64)")
		}
		return "", lerr
	}
	spec.Guest = lepton.GuestLinux
	return fmt.Sprintf("guest: linux %s (no Nanos release installed; run 'ops update')", spec.Linux.Version), nil
}

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

// buildImage makes the plan and builds (or reuses) its image.
func buildImage(f *buildFlags, c *lepton.Config, in lepton.PlanInput, defaultName string) (*built, error) {
	start := time.Now()
	home, err := lepton.DefaultHome()
	if err != nil {
		return nil, err
	}
	plan, err := lepton.NewPlan(in)
	if err != nil {
		return nil, err
	}
	b := &built{home: home}
	b.spec.Plan = plan
	if b.spec.MinRoot, err = lepton.ParseSize(c.BaseVolumeSz); err != nil {
		return nil, fmt.Errorf("BaseVolumeSz: %w", err)
	}
	if b.note, err = chooseGuest(home, c, &b.spec); err != nil {
		return nil, err
	}
	if b.spec.Out, err = imagePath(home, f, c, b.spec.Guest, defaultName); err != nil {
		return nil, err
	}
	if b.result, err = lepton.BuildImage(b.spec); err != nil {
		return nil, err
	}
	b.took = time.Since(start)
	return b, nil
}

// imagePath is -o, else <home>/images/<name> (".initramfs" added for the
// Linux guest), the name from -i, RunConfig.ImageName or the default.
func imagePath(home lepton.Home, f *buildFlags, c *lepton.Config, guest, defaultName string) (string, error) {
	if f.output != "" {
		return f.output, nil
	}
	name := c.RunConfig.ImageName
	if name == "" {
		name = defaultName
	}
	if guest == lepton.GuestLinux {
		name += ".initramfs"
	}
	return home.ImagePath(name)
}

func newBuildCmd(app *App) *cobra.Command {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "build [ELF]",
		Short: "Build a bootable image from an ELF program without running it",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.loadConfig(cmd)
			if err != nil {
				return err
			}
			in, name, err := elfInput(c, args)
			if err != nil {
				return err
			}
			b, err := buildImage(f, c, in, name)
			if err != nil {
				return err
			}
			if b.note != "" {
				fmt.Fprintln(app.Stderr, b.note)
			}
			if f.json {
				return json.NewEncoder(app.Stdout).Encode(map[string]any{
					"image": b.result.Path, "guest": b.spec.Guest, "size": b.result.Size,
					"reused": b.result.Reused, "milliseconds": b.took.Milliseconds(),
				})
			}
			if c.RunConfig.Verbose {
				state := "built"
				if b.result.Reused {
					state = "unchanged, reused"
				}
				fmt.Fprintf(app.Stderr, "%s image, %d bytes, %s in %v\n", b.spec.Guest, b.result.Size, state, b.took.Round(time.Millisecond))
			}
			fmt.Fprintln(app.Stdout, b.result.Path)
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}
