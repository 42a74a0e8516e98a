package pkgenv

import (
	"os"

	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/packages"
)

// localPackage is the local package name_version, when that is a valid
// package name.
func localPackage(name, version string) (packages.Package, error) {
	p := packages.Package{Name: name, Version: version}
	if _, err := packages.ParseRef(p.Ref()); err != nil {
		return packages.Package{}, err
	}
	return p, nil
}

// staging is a new temporary folder beside the local packages, where a
// local package is written before it moves into place, so it appears
// complete or not at all. kind names what it is made from; the caller
// removes the folder.
func staging(store packages.Store, kind string) (string, error) {
	if err := os.MkdirAll(store.LocalDir(), 0o755); err != nil {
		return "", err
	}
	if err := fileutil.ClearStale(store.LocalDir()); err != nil {
		return "", err
	}
	return fileutil.MkdirTemp(store.LocalDir(), "from-"+kind)
}
