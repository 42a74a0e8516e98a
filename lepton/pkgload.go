package lepton

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/opsdev/ops/elfdeps"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/packages"
)

// PackagePlan turns a package folder and the user's config into a plan
// input, as nanovms/ops loads packages: the program comes from the
// package, its arguments come first and the user's follow, the package's
// sysroot is laid over the image root and its Dirs and Files come before
// the user's, the user's environment wins, and the first argument (the
// script, say) is copied from the current folder when it is there.
func PackagePlan(pkgDir string, user *Config, cwd string) (PlanInput, error) {
	mf := filepath.Join(pkgDir, packages.ManifestFile)
	pkg, err := LoadConfig(mf)
	if err != nil {
		return PlanInput{}, err
	}
	if pkg.Program == "" {
		return PlanInput{}, fmt.Errorf("%s: no Program", mf)
	}
	c := *user
	in := PlanInput{Config: &c, Dir: cwd, NoDeps: true}
	if path.IsAbs(pkg.Program) {
		// A program inside the sysroot, at its guest path with links
		// resolved (/bin may be a link to usr/bin).
		sys := filepath.Join(pkgDir, "sysroot")
		in.Program = elfdeps.ResolveInRoot(sys, pkg.Program)
		rel, err := filepath.Rel(sys, in.Program)
		if err != nil {
			return PlanInput{}, err
		}
		in.ProgramGuest = "/" + filepath.ToSlash(rel)
	} else {
		// "name_version/prog": the file sits at the top of the package.
		base := path.Base(pkg.Program)
		in.Program = filepath.Join(pkgDir, base)
		in.ProgramGuest = "/" + base
	}
	if _, err := os.Stat(in.Program); err != nil {
		return PlanInput{}, fmt.Errorf("%s: Program %s is not in the package", mf, pkg.Program)
	}
	if sys := filepath.Join(pkgDir, "sysroot"); isDir(sys) {
		in.Layers = append(in.Layers, Layer{Host: sys, Guest: "/", Root: true})
	}
	for _, d := range pkg.Dirs {
		in.Layers = append(in.Layers, Layer{Host: filepath.Join(pkgDir, d), Guest: guestPathFor(d)})
	}
	for _, f := range pkg.Files {
		in.Files = append(in.Files, Layer{Host: filepath.Join(pkgDir, f), Guest: guestPathFor(f)})
	}
	if len(pkg.MapDirs) > 0 {
		m := map[string]string{}
		for k, v := range pkg.MapDirs {
			m[filepath.Join(pkgDir, k)] = v
		}
		for k, v := range user.MapDirs {
			m[k] = v
		}
		c.MapDirs = m
	}
	in.Argv = pkg.Args
	if len(in.Argv) == 0 {
		in.Argv = []string{path.Base(in.ProgramGuest)}
	}
	env := map[string]string{}
	for k, v := range pkg.Env {
		env[k] = v
	}
	for k, v := range user.Env {
		env[k] = v
	}
	c.Env = env
	if c.CwdPath == "" {
		c.CwdPath = pkg.CwdPath
	}
	if c.ManifestPassthrough == nil {
		c.ManifestPassthrough = pkg.ManifestPassthrough
	}
	c.Debugflags = appendNew(pkg.Debugflags, c.Debugflags)
	if len(c.NoTrace) == 0 {
		c.NoTrace = pkg.NoTrace
	}
	c.RebootOnExit = c.RebootOnExit || pkg.RebootOnExit
	// Copy the script named as the first argument from the current folder.
	args := append(append([]string(nil), pkg.Args...), user.Args...)
	if !user.DisableArgsCopy && !pkg.DisableArgsCopy && len(args) > 1 {
		a := args[1]
		if !filepath.IsAbs(a) && !strings.HasPrefix(a, "-") {
			if _, err := os.Stat(filepath.Join(cwd, a)); err == nil {
				c.Files = append(append([]string(nil), c.Files...), a)
			}
		}
	}
	return in, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// MakeLocalPackage writes a local package from a host program: the
// program at the top, its interpreter and libraries (resolved as ops build
// resolves them, never by running it) under sysroot/, and a manifest. The
// package appears complete or not at all.
func MakeLocalPackage(store packages.Store, program, name, version string, c *Config) (string, error) {
	if name == "" {
		name = filepath.Base(program)
	}
	if version == "" {
		return "", fmt.Errorf("pass --version for the package")
	}
	p := packages.Package{Name: name, Version: version}
	if _, err := packages.ParseRef(p.Ref()); err != nil {
		return "", err
	}
	base := filepath.Base(program)
	deps, err := elfdeps.NewResolver(c.TargetRoot).Resolve(program, "/"+base)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(store.LocalDir(), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(store.LocalDir(), ".from-run-")
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
