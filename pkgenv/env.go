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
	"strings"
	"time"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
)

// URLs name a package repository: its index and where its tarballs are.
// An empty field leaves the address to the next source.
type URLs struct {
	Manifest string // the index (default packages.DefaultManifestURL)
	Base     string // the tarballs' folder (default: the index's)
}

// Env is the package store and the repository its index comes from, for
// one architecture (Store.Arch): its packages are the index's entries
// built for it, its local packages those in local_packages/<arch>/, and
// Registry takes its image from a multi-platform container image.
type Env struct {
	Store packages.Store
	Repo  packages.Repo
	// Override wins over a config's URLs (ops passes
	// OPS_PACKAGE_MANIFEST_URL and OPS_PACKAGE_BASE_URL).
	Override URLs
	// Registry is where ImagePackage loads images from; its Arch is
	// Store's (ForArch sets both).
	Registry packages.Registry
	// Progress, when set, gives each download's progress reader (a bar on
	// a terminal); label names the download. It may return nil.
	Progress func(label string) func(total int64, r io.Reader) io.Reader
	// Say, when set, takes the notices: the index's offline one, and what
	// ImagePackage made of an image.
	Say func(line string)
}

// New is the environment of a package store (lepton.Home.Packages), for
// its architecture, on the default repository unless over names another.
func New(store packages.Store, over URLs) *Env {
	e := &Env{Store: store, Override: over, Registry: packages.Registry{Arch: store.Arch}}
	e.Repo = e.repoFor(nil)
	return e
}

// For is e on the repository c names (config.json's PackageManifestURL
// and PackageBaseURL; nil: none), Override still winning, and for the
// architecture c names (Arch, --arch), when it names one.
func (e *Env) For(c *lepton.Config) (*Env, error) {
	n := *e
	n.Repo = e.repoFor(c)
	if c != nil && c.Arch != "" {
		a, err := c.Target()
		if err != nil {
			return nil, err
		}
		return n.ForArch(a), nil
	}
	return &n, nil
}

// ForArch is e for packages built for a: its store's packages/<a>/ and
// local_packages/<a>/, the index's entries for a, and a's image of a
// multi-platform container image.
func (e *Env) ForArch(a arch.Arch) *Env {
	n := *e
	n.Store.Arch = a
	n.Registry.Arch = a
	return &n
}

// Arch is the architecture of e's packages.
func (e *Env) Arch() arch.Arch { return e.Store.Arch }

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

// Index is the repository's list of packages built for e's architecture
// (the cached copy, with a notice, when the repository cannot be
// reached).
func (e *Env) Index(ctx context.Context) ([]packages.Package, error) {
	all, err := e.index(ctx)
	if err != nil {
		return nil, err
	}
	return packages.ForArch(all, e.Store.Arch), nil
}

// index is the repository's list of packages, for every architecture.
func (e *Env) index(ctx context.Context) ([]packages.Package, error) {
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
	all, err := e.index(ctx)
	if err != nil {
		return "", packages.Package{}, err
	}
	p, err := packages.Find(packages.ForArch(all, e.Store.Arch), ref)
	if err != nil {
		others := otherArches(e.Store.Arch, func(a arch.Arch) bool {
			_, err := packages.Find(packages.ForArch(all, a), ref)
			return err == nil
		})
		if len(others) > 0 {
			return "", p, fmt.Errorf("%s has no %s build in the package repository, only %s (--arch %s)", name, e.Store.Arch, others, others[0])
		}
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
		return "", fmt.Errorf("%s is not downloaded for %s (ops pkg get --arch %s fetches it)", name, e.Store.Arch, e.Store.Arch)
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
		others := otherArches(e.Store.Arch, func(a arch.Arch) bool {
			pkgs, err := packages.Store{Home: e.Store.Home, Arch: a}.Local()
			if err != nil {
				return false
			}
			_, err = packages.Find(pkgs, ref)
			return err == nil
		})
		if len(others) > 0 {
			return "", p, fmt.Errorf("local package %s is built for %s, not %s (--arch %s)", ref, others, e.Store.Arch, others[0])
		}
		return "", p, fmt.Errorf("local packages: %w", err)
	}
	return e.Store.LocalDirOf(p), p, nil
}

// otherArches are the architectures other than a for which has is true.
func otherArches(a arch.Arch, has func(arch.Arch) bool) archList {
	var out archList
	for _, o := range arch.All() {
		if o != a && has(o) {
			out = append(out, o)
		}
	}
	return out
}

// archList prints as "amd64" or "amd64 and arm64".
type archList []arch.Arch

func (l archList) String() string {
	s := make([]string, len(l))
	for i, a := range l {
		s[i] = string(a)
	}
	return strings.Join(s, " and ")
}

// Input is the plan input that runs package name (local: a local one)
// with the user's config c, whose repository it comes from, and the
// user's files in cwd (ops pkg load, image create --package).
func (e *Env) Input(ctx context.Context, name string, local bool, c *lepton.Config, cwd string) (lepton.PlanInput, packages.Package, error) {
	e, err := e.For(c)
	if err != nil {
		return lepton.PlanInput{}, packages.Package{}, err
	}
	dir, p, err := e.Resolve(ctx, name, local)
	if err != nil {
		return lepton.PlanInput{}, p, err
	}
	in, err := Plan(dir, c, cwd)
	return in, p, err
}
