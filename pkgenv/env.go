// Package pkgenv is the package environment: the package store in the
// ops home, the repository its index comes from, and what ops makes of
// packages: the plan input that runs one (Plan), and local packages made
// from a host program (FromRun), another package (Clone) or a container
// image (FromImage, Env.ImagePackage).
//
// It reads no environment variables and prints nothing: the caller passes
// the repository's URLs in, and takes notices through Env.Say.
package pkgenv

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
)

// URLs name a package repository: its index and where its tarballs are.
// An empty field leaves the address to the next source.
type URLs struct {
	Manifest string // the index (default packages.DefaultManifestURL)
	Base     string // the tarballs' folder (default: the index's)
}

// Env is the package store and the repository its index comes from.
type Env struct {
	Store packages.Store
	Repo  packages.Repo
	// Override wins over a config's URLs (ops passes
	// OPS_PACKAGE_MANIFEST_URL and OPS_PACKAGE_BASE_URL).
	Override URLs
	// Registry is where ImagePackage loads images from.
	Registry packages.Registry
	// Progress, when set, gives each download's progress reader (a bar on
	// a terminal); label names the download. It may return nil.
	Progress func(label string) func(total int64, r io.Reader) io.Reader
	// Say, when set, takes the notices: the index's offline one, and what
	// ImagePackage made of an image.
	Say func(line string)
}

// New is the environment of a package store (lepton.Home.Packages), on
// the default repository unless over names another.
func New(store packages.Store, over URLs) *Env {
	e := &Env{Store: store, Override: over}
	e.Repo = e.repoFor(nil)
	return e
}

// For is e on the repository c names (config.json's PackageManifestURL
// and PackageBaseURL; nil: none), Override still winning.
func (e *Env) For(c *lepton.Config) *Env {
	n := *e
	n.Repo = e.repoFor(c)
	return &n
}

func (e *Env) repoFor(c *lepton.Config) packages.Repo {
	r := packages.Repo{ManifestURL: packages.DefaultManifestURL, CacheFile: e.Store.IndexCache(), MaxAge: time.Hour}
	var cfg URLs
	if c != nil {
		cfg = URLs{Manifest: c.PackageManifestURL, Base: c.PackageBaseURL}
	}
	for _, u := range []URLs{cfg, e.Override} {
		if u.Manifest != "" {
			r.ManifestURL = u.Manifest
		}
		if u.Base != "" {
			r.BaseURL = u.Base
		}
	}
	return r
}

func (e *Env) say(line string) {
	if e.Say != nil {
		e.Say(line)
	}
}

// Index is the repository's list of packages (the cached copy, with a
// notice, when the repository cannot be reached).
func (e *Env) Index(ctx context.Context) ([]packages.Package, error) {
	ix, notice, err := e.Repo.Load(ctx, false)
	if err != nil {
		return nil, err
	}
	if notice != "" {
		e.say(notice)
	}
	return ix.Packages, nil
}

// Resolve finds a package's folder: a local package (local), else one
// from the index, downloaded first when it is not cached yet.
func (e *Env) Resolve(ctx context.Context, name string, local bool) (string, packages.Package, error) {
	ref, err := packages.ParseRef(name)
	if err != nil {
		return "", packages.Package{}, err
	}
	if local {
		return e.local(ref)
	}
	pkgs, err := e.Index(ctx)
	if err != nil {
		return "", packages.Package{}, err
	}
	p, err := packages.Find(pkgs, ref)
	if err != nil {
		return "", p, err
	}
	if e.Store.Installed(p) {
		return e.Store.Dir(p), p, e.Store.ClearStale(p)
	}
	var progress func(int64, io.Reader) io.Reader
	if e.Progress != nil {
		progress = e.Progress("downloading " + p.Ref())
	}
	dir, err := e.Store.Install(ctx, e.Repo, p, progress)
	return dir, p, err
}

// Installed finds a package already on this machine, never downloading:
// a local one (local), or a downloaded one in the cache.
func (e *Env) Installed(name string, local bool) (string, error) {
	ref, err := packages.ParseRef(name)
	if err != nil {
		return "", err
	}
	if local {
		dir, _, err := e.local(ref)
		return dir, err
	}
	if ref.Namespace == "" || ref.Version == "" {
		return "", fmt.Errorf("%q: name a downloaded package as namespace/name:version (or pass -l for a local one)", name)
	}
	p := packages.Package{Namespace: ref.Namespace, Name: ref.Name, Version: ref.Version}
	if !e.Store.Installed(p) {
		return "", fmt.Errorf("%s is not downloaded (ops pkg get fetches it)", name)
	}
	return e.Store.Dir(p), nil
}

// local finds a local package.
func (e *Env) local(ref packages.Ref) (string, packages.Package, error) {
	pkgs, err := e.Store.Local()
	if err != nil {
		return "", packages.Package{}, err
	}
	p, err := packages.Find(pkgs, ref)
	if err != nil {
		return "", p, fmt.Errorf("local packages: %w", err)
	}
	return e.Store.LocalDirOf(p), p, nil
}

// Input is the plan input that runs package name (local: a local one)
// with the user's config c, whose repository it comes from, and the
// user's files in cwd (ops pkg load, image create --package).
func (e *Env) Input(ctx context.Context, name string, local bool, c *lepton.Config, cwd string) (lepton.PlanInput, packages.Package, error) {
	dir, p, err := e.For(c).Resolve(ctx, name, local)
	if err != nil {
		return lepton.PlanInput{}, p, err
	}
	in, err := Plan(dir, c, cwd)
	return in, p, err
}
