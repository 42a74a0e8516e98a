package packages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/internal/fileutil"
)

// ManifestFile is the file every package folder holds: a config.json
// document naming the program, its arguments and the version.
const ManifestFile = "package.manifest"

// Store is where packages live under the ops home, laid out as
// nanovms/ops lays them out:
//
//	<home>/packages/manifest.json                  the cached index
//	<home>/packages/<arch>/<namespace>/<name>_<version>/
//	<home>/local_packages/<arch>/<name>_<version>/
//
// The index is one file for every architecture; the packages are kept
// apart by the architecture they are built for, which is all a folder of
// them says about it (nanovms/ops reads package.manifest with unknown
// keys refused, so the manifest cannot carry it).
type Store struct {
	Home string
	Arch arch.Arch // the architecture of the packages it holds
}

// cacheDir holds downloaded packages.
func (s Store) cacheDir() string { return filepath.Join(s.Home, "packages", string(s.Arch)) }

// LocalDir holds local packages.
func (s Store) LocalDir() string { return filepath.Join(s.Home, "local_packages", string(s.Arch)) }

// IndexCache is the cached repository index (every architecture's).
func (s Store) IndexCache() string { return filepath.Join(s.Home, "packages", "manifest.json") }

// Dir is where a downloaded package is (or will be) unpacked.
func (s Store) Dir(p Package) string {
	return filepath.Join(s.cacheDir(), p.Namespace, p.DirName())
}

// Installed reports whether a downloaded package is unpacked.
func (s Store) Installed(p Package) bool {
	_, err := os.Stat(filepath.Join(s.Dir(p), ManifestFile))
	return err == nil
}

// ClearStale removes what a download killed on the way left beside p's
// folder (a get killed as it tidied up leaves p installed, and its
// temporary folder beside it).
func (s Store) ClearStale(p Package) error { return fileutil.ClearStale(filepath.Dir(s.Dir(p))) }

// Install downloads, verifies and unpacks p. The tarball's SHA-256 is
// checked before it is opened, it is unpacked into a temporary folder
// with every safety check, and only a complete package is renamed into
// place.
func (s Store) Install(ctx context.Context, r Repo, p Package, progress func(int64, io.Reader) io.Reader) (string, error) {
	if a, ok := p.Target(); !ok || a != s.Arch {
		return "", fmt.Errorf("%s is built for %s, not %s: it cannot go into %s", p.Ref(), p.archName(), s.Arch, s.cacheDir())
	}
	dest := s.Dir(p)
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	if err := s.ClearStale(p); err != nil {
		return "", err
	}
	tmp, err := fileutil.MkdirTemp(parent, "get")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	tgz := filepath.Join(tmp, "pkg.tar.gz")
	if err := r.Download(ctx, p, tgz, progress); err != nil {
		return "", err
	}
	dir, err := unpack(tgz, filepath.Join(tmp, "x"))
	if err != nil {
		return "", fmt.Errorf("%s: %w", p.Ref(), err)
	}
	return dest, fileutil.ReplaceDir(dir, dest, tmp)
}

// unpack extracts a package tarball and returns its package folder: the
// single top folder holding package.manifest, or the top itself.
func unpack(tgz, into string) (string, error) {
	f, err := os.Open(tgz)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := ExtractTarGz(f, into, DefaultLimits()); err != nil {
		return "", err
	}
	return packageRoot(into)
}

func packageRoot(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		return dir, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) == 1 {
		if _, err := os.Stat(filepath.Join(dir, dirs[0], ManifestFile)); err == nil {
			return filepath.Join(dir, dirs[0]), nil
		}
	}
	return "", fmt.Errorf("no %s at the top of the package or in its single folder", ManifestFile)
}

// Meta is what a package manifest says about the package, beyond the
// config keys ops reads when loading it.
type Meta struct {
	Version     string
	Language    string
	Description string
}

// ReadMeta reads a package folder's manifest for listing.
func ReadMeta(dir string) (Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return Meta{}, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	return m, nil
}

// Local lists local packages.
func (s Store) Local() ([]Package, error) {
	ents, err := os.ReadDir(s.LocalDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Package
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		m, err := ReadMeta(filepath.Join(s.LocalDir(), e.Name()))
		if err != nil {
			continue
		}
		name, version := splitDirName(e.Name(), m.Version)
		out = append(out, Package{Name: name, Version: version, Language: m.Language, Description: m.Description, Arch: IndexArch(s.Arch)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DirName() < out[j].DirName() })
	return out, nil
}

// splitDirName splits name_version, preferring the manifest's version.
func splitDirName(dir, version string) (string, string) {
	if version != "" && strings.HasSuffix(dir, "_"+version) {
		return strings.TrimSuffix(dir, "_"+version), version
	}
	if i := strings.LastIndex(dir, "_"); i > 0 {
		return dir[:i], dir[i+1:]
	}
	return dir, ""
}

// LocalDirOf is a local package's folder.
func (s Store) LocalDirOf(p Package) string { return filepath.Join(s.LocalDir(), p.DirName()) }

// AddLocal imports a package folder or tarball as a local package named
// name_version, after the same safety checks as a download, and check
// (when set) on the package folder before it takes its place. name and
// version default to the folder name and the manifest's Version.
func (s Store) AddLocal(src, name, version string, check func(dir string) error) (string, error) {
	if err := os.MkdirAll(s.LocalDir(), 0o755); err != nil {
		return "", err
	}
	if err := fileutil.ClearStale(s.LocalDir()); err != nil {
		return "", err
	}
	tmp, err := fileutil.MkdirTemp(s.LocalDir(), "add")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	st, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	var dir string
	if st.IsDir() {
		dir = filepath.Join(tmp, "x")
		if err := copyPackageTree(src, dir); err != nil {
			return "", err
		}
		if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err != nil {
			return "", fmt.Errorf("%s has no %s", src, ManifestFile)
		}
	} else if dir, err = unpack(src, filepath.Join(tmp, "x")); err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}
	m, err := ReadMeta(dir)
	if err != nil {
		return "", err
	}
	if name == "" {
		base := filepath.Base(filepath.Clean(src))
		base = strings.TrimSuffix(strings.TrimSuffix(base, ".tar.gz"), ".tgz")
		name, version = splitDirNameDefault(base, m.Version, version)
	}
	if version == "" {
		version = m.Version
	}
	if version == "" {
		return "", fmt.Errorf("%s: no version; pass --version or set Version in %s", src, ManifestFile)
	}
	p := Package{Name: name, Version: version}
	if _, err := ParseRef(p.Ref()); err != nil {
		return "", err
	}
	if check != nil {
		if err := check(dir); err != nil {
			return "", err
		}
	}
	dest := s.LocalDirOf(p)
	return dest, fileutil.ReplaceDir(dir, dest, tmp)
}

func splitDirNameDefault(base, manifestVersion, version string) (string, string) {
	if version != "" {
		return strings.TrimSuffix(base, "_"+version), version
	}
	return splitDirName(base, manifestVersion)
}

// copyPackageTree copies a package folder, refusing special files and links that
// leave it (those under sysroot/ name guest paths and are kept), as
// extraction does.
func copyPackageTree(src, dest string) error { return copyTree(src, dest, false) }

// CopyRootTree copies a folder of a root filesystem: links are kept as
// written, absolute ones included, since they name guest paths; special
// files are skipped, as extraction with Limits.RootFS does.
func CopyRootTree(src, dest string) error { return copyTree(src, dest, true) }

// copyTree copies src into dest. Links are copied, never followed, and
// nothing is written through a link already at the destination, so dest
// may be a folder that earlier copies filled without letting their links
// redirect this one out of it.
func copyTree(src, dest string, rootFS bool) error {
	src = filepath.Clean(src)
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dest, rel)
		switch {
		case d.IsDir():
			if err := notLink(target); err != nil {
				return err
			}
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if !rootFS && !linkInside(filepath.ToSlash(rel), link) && !inSysroot(filepath.ToSlash(rel)) {
				return fmt.Errorf("%s: link to %q points outside the package", p, link)
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			if err := notLink(target); err != nil {
				return err
			}
			return fileutil.CopyFile(p, target, info.Mode().Perm()|0o600)
		}
		if rootFS {
			return nil
		}
		return fmt.Errorf("%s: special files are not allowed in a package", p)
	})
}

// notLink refuses a destination that is a symlink: writing there would
// follow it, possibly out of the destination folder.
func notLink(target string) error {
	st, err := os.Lstat(target)
	if err == nil && st.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a link; refusing to write through it", target)
	}
	return nil
}
