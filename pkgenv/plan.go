package pkgenv

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opsdev/ops/elfdeps"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
)

// Plan turns a package folder and the user's config into a plan
// input, as nanovms/ops loads packages: the program comes from the
// package, its arguments come first and the user's follow, the package's
// sysroot is laid over the image root and its Dirs and Files come before
// the user's, the user's environment wins, and the first argument (the
// script, say) is copied from the current folder when it is there.
func Plan(pkgDir string, user *lepton.Config, cwd string) (lepton.PlanInput, error) {
	mf := filepath.Join(pkgDir, packages.ManifestFile)
	pkg, err := lepton.LoadConfig(mf)
	if err != nil {
		return lepton.PlanInput{}, err
	}
	if pkg.Program == "" {
		return lepton.PlanInput{}, fmt.Errorf("%s: no Program", mf)
	}
	c := *user
	in := lepton.PlanInput{Config: &c, Dir: cwd, NoDeps: true}
	if in.Program, in.ProgramGuest, err = programFile(pkgDir, pkg.Program); err != nil {
		return lepton.PlanInput{}, err
	}
	if sys := filepath.Join(pkgDir, "sysroot"); isDir(sys) {
		in.Layers = append(in.Layers, lepton.Layer{Host: sys, Guest: "/", Root: true})
	}
	for _, d := range pkg.Dirs {
		in.Layers = append(in.Layers, lepton.Layer{Host: filepath.Join(pkgDir, d), Guest: guestPath(d)})
	}
	for _, f := range pkg.Files {
		in.Files = append(in.Files, lepton.Layer{Host: filepath.Join(pkgDir, f), Guest: guestPath(f)})
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
	flags := slices.Clone(pkg.Debugflags) // the package's, then the user's it lacks
	for _, f := range c.Debugflags {
		if !slices.Contains(flags, f) {
			flags = append(flags, f)
		}
	}
	c.Debugflags = flags
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

// programFile is where a package's Program (as its manifest names it)
// is: the host file and its guest path.
func programFile(pkgDir, program string) (host, guest string, err error) {
	if path.IsAbs(program) {
		// A program inside the sysroot, at its guest path with links
		// resolved (/bin may be a link to usr/bin).
		sys := filepath.Join(pkgDir, "sysroot")
		host = elfdeps.ResolveInRoot(sys, program)
		rel, err := filepath.Rel(sys, host)
		if err != nil {
			return "", "", err
		}
		guest = "/" + filepath.ToSlash(rel)
	} else {
		// "name_version/prog": the file sits at the top of the package.
		base := path.Base(program)
		host = filepath.Join(pkgDir, base)
		guest = "/" + base
	}
	if _, err := os.Stat(host); err != nil {
		return "", "", fmt.Errorf("%s: Program %s is not in the package", filepath.Join(pkgDir, packages.ManifestFile), program)
	}
	return host, guest, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// guestPath maps a manifest's Dirs or Files entry to its guest path:
// relative paths land below the root at the same relative path.
func guestPath(p string) string {
	return path.Clean("/" + filepath.ToSlash(p))
}
