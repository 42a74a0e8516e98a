package cmd

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// pkgEnv is what every package command needs: the store and the repo.
type pkgEnv struct {
	store packages.Store
	repo  packages.Repo
}

func newPkgEnv(home lepton.Home, c *lepton.Config) *pkgEnv {
	store := home.Packages("amd64")
	repo := packages.Repo{ManifestURL: packages.DefaultManifestURL, CacheFile: store.IndexCache(), MaxAge: time.Hour}
	if c != nil && c.PackageManifestURL != "" {
		repo.ManifestURL = c.PackageManifestURL
	}
	if u := os.Getenv("OPS_PACKAGE_MANIFEST_URL"); u != "" {
		repo.ManifestURL = u
	}
	if c != nil && c.PackageBaseURL != "" {
		repo.BaseURL = c.PackageBaseURL
	}
	if u := os.Getenv("OPS_PACKAGE_BASE_URL"); u != "" {
		repo.BaseURL = u
	}
	return &pkgEnv{store: store, repo: repo}
}

// index loads the repository index, printing the offline notice if any.
func (e *pkgEnv) index(app *App) ([]packages.Package, error) {
	ix, notice, err := e.repo.Load(app.Context(), false)
	if err != nil {
		return nil, err
	}
	if notice != "" {
		fmt.Fprintln(app.Stderr, notice)
	}
	return ix.Packages, nil
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

// resolve finds a package folder: local (-l) or downloaded (getting it
// first when it is not cached yet).
func (e *pkgEnv) resolve(app *App, name string, local bool) (string, packages.Package, error) {
	ref, err := packages.ParseRef(name)
	if err != nil {
		return "", packages.Package{}, err
	}
	if local {
		pkgs, err := e.store.Local()
		if err != nil {
			return "", packages.Package{}, err
		}
		p, err := packages.Find(pkgs, ref)
		if err != nil {
			return "", p, fmt.Errorf("local packages: %w", err)
		}
		return e.store.LocalDirOf(p), p, nil
	}
	pkgs, err := e.index(app)
	if err != nil {
		return "", packages.Package{}, err
	}
	p, err := packages.Find(pkgs, ref)
	if err != nil {
		return "", p, err
	}
	if e.store.Installed(p) {
		return e.store.Dir(p), p, nil
	}
	dir, err := e.store.Install(app.Context(), e.repo, p, progress(app, "downloading "+p.Ref()))
	return dir, p, err
}

// onTerminal reports whether ops's messages go to a terminal: progress
// bars show there and stay out of scripts and CI logs.
func onTerminal(app *App) bool {
	f, ok := app.Stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// resolvePackage finds a package's folder (downloading it first when it
// is not cached), from the repository c names (nil: the default).
func (a *App) resolvePackage(c *lepton.Config, name string, local bool) (*pkgEnv, string, packages.Package, error) {
	e, err := a.Packages(c)
	if err != nil {
		return nil, "", packages.Package{}, err
	}
	dir, p, err := e.resolve(a, name, local)
	return e, dir, p, err
}

// packageInput is the plan input that runs a package's program with the
// user's config, from the current folder (pkg load, image create -p).
func packageInput(app *App, c *lepton.Config, name string, local bool) (lepton.PlanInput, packages.Package, error) {
	_, dir, p, err := app.resolvePackage(c, name, local)
	if err != nil {
		return lepton.PlanInput{}, p, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return lepton.PlanInput{}, p, err
	}
	in, err := lepton.PackagePlan(dir, c, wd)
	return in, p, err
}
