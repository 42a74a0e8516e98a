package pkgenv

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opsdev/ops/elfdeps"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
)

// FromRun writes a local package from a host program built for the
// store's architecture (another is refused in one line): the program at
// the top, its interpreter and libraries (resolved as ops build
// resolves them, never by running it) under sysroot/, and a manifest. The
// package appears complete or not at all.
func FromRun(store packages.Store, program, name, version string, c *lepton.Config) (string, error) {
	if name == "" {
		name = filepath.Base(program)
	}
	if version == "" {
		return "", fmt.Errorf("pass --version for the package")
	}
	p, err := localPackage(name, version)
	if err != nil {
		return "", err
	}
	if err := checkProgramArch(program, program, store.Arch); err != nil {
		return "", err
	}
	base := filepath.Base(program)
	deps, err := elfdeps.NewResolverFor(lepton.TargetRoot(c.TargetRoot, store.Arch), store.Arch).Resolve(program, "/"+base)
	if err != nil {
		return "", err
	}
	tmp, err := staging(store, "run")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, p.DirName())
	if err := os.MkdirAll(filepath.Join(dir, "sysroot"), 0o755); err != nil {
		return "", err
	}
	if err := fileutil.CopyFile(program, filepath.Join(dir, base), 0o755); err != nil {
		return "", err
	}
	files := deps.Libs
	if deps.Interp != nil {
		files = append([]elfdeps.Dep{*deps.Interp}, files...)
	}
	for _, d := range files {
		dest := filepath.Join(dir, "sysroot", filepath.FromSlash(d.Guest))
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return "", err
		}
		if err := fileutil.CopyFile(d.Host, dest, 0o755); err != nil {
			return "", err
		}
	}
	env := map[string]string{}
	if len(deps.ExtraDirs) > 0 {
		env["LD_LIBRARY_PATH"] = strings.Join(deps.ExtraDirs, ":")
	}
	man, err := json.MarshalIndent(map[string]any{
		"Program": p.DirName() + "/" + base,
		"Args":    []string{base},
		"Version": version,
		"Env":     env,
	}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, packages.ManifestFile), append(man, '\n'), 0o644); err != nil {
		return "", err
	}
	dest := store.LocalDirOf(p)
	return dest, fileutil.ReplaceDir(dir, dest, tmp)
}
