package cmd

import (
	"fmt"
	"io"
	"os"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
	"github.com/opsdev/ops/pkgenv"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// newPkgEnv is the package environment of home, for the architecture c
// names (nil, or no Arch: this machine's), on the repository c names
// (nil: the default) unless the environment names another
// (OPS_PACKAGE_MANIFEST_URL, OPS_PACKAGE_BASE_URL); its downloads show a
// progress bar on a terminal and its notices go to stderr.
func newPkgEnv(app *App, home lepton.Home, c *lepton.Config) (*pkgenv.Env, error) {
	e, err := pkgenv.New(home.Packages(arch.Host()), pkgenv.URLs{Manifest: os.Getenv("OPS_PACKAGE_MANIFEST_URL"), Base: os.Getenv("OPS_PACKAGE_BASE_URL")}).For(c)
	if err != nil {
		return nil, err
	}
	e.Progress = func(label string) func(int64, io.Reader) io.Reader { return progress(app, label) }
	e.Say = func(line string) { fmt.Fprintln(app.Stderr, line) }
	return e, nil
}

// pkgArchFlag is --arch on the pkg commands that take no build flags:
// the architecture of the packages they work on.
func pkgArchFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "arch", "", "the packages' architecture: amd64 (x86_64) or arm64 (aarch64); default: this machine's")
}

// packagesFor is the package environment for the architecture an --arch
// flag names ("": this machine's), on the default repository.
func (a *App) packagesFor(archName string) (*pkgenv.Env, error) {
	return a.Packages(&lepton.Config{Arch: archName})
}

// progress shows a bar only when stderr is a terminal.
func progress(app *App, label string) func(int64, io.Reader) io.Reader {
	if !onTerminal(app) {
		return nil
	}
	return func(total int64, r io.Reader) io.Reader {
		bar := progressbar.DefaultBytes(total, label)
		rd := progressbar.NewReader(r, bar)
		return &rd
	}
}

// onTerminal reports whether ops's messages go to a terminal: progress
// bars show there and stay out of scripts and CI logs.
func onTerminal(app *App) bool {
	f, ok := app.Stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// resolvePackage finds a package's folder (downloading it first when it
// is not cached), from the repository c names (nil: the default).
func (a *App) resolvePackage(c *lepton.Config, name string, local bool) (*pkgenv.Env, string, packages.Package, error) {
	e, err := a.Packages(c)
	if err != nil {
		return nil, "", packages.Package{}, err
	}
	dir, p, err := e.Resolve(a.Context(), name, local)
	return e, dir, p, err
}

// packageInput is the plan input that runs a package's program with the
// user's config, from the current folder (pkg load, image create -p).
func packageInput(app *App, c *lepton.Config, name string, local bool) (lepton.PlanInput, packages.Package, error) {
	e, err := app.Packages(c)
	if err != nil {
		return lepton.PlanInput{}, packages.Package{}, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return lepton.PlanInput{}, packages.Package{}, err
	}
	return e.Input(app.Context(), name, local, c, wd)
}
