package pkgenv

import (
	"debug/elf"
	"fmt"
	"path/filepath"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
)

// checkProgramArch refuses a program built for another architecture than
// a package for a holds, in one line naming both. A file that is not an
// ELF of a machine ops builds for is left to the build to judge.
func checkProgramArch(program, name string, a arch.Arch) error {
	f, err := elf.Open(program)
	if err != nil {
		return nil
	}
	defer f.Close()
	got, ok := arch.ForELF(f.Machine)
	if !ok || got == a {
		return nil
	}
	return fmt.Errorf("%s is an %s program; a package for %s cannot hold it (--arch %s makes an %s package)", name, got, a, got, got)
}

// checkPackageArch refuses a package folder whose program is built for
// another architecture than a (a manifest without one is for the load to
// judge).
func checkPackageArch(pkgDir string, a arch.Arch) error {
	man, err := lepton.LoadConfig(filepath.Join(pkgDir, packages.ManifestFile))
	if err != nil {
		return err
	}
	if man.Program == "" {
		return nil
	}
	host, _, err := programFile(pkgDir, man.Program)
	if err != nil {
		return err
	}
	return checkProgramArch(host, "its program "+man.Program, a)
}

// AddLocal imports a package folder or tarball as a local package of e's
// architecture (packages.Store.AddLocal), refusing one whose program is
// built for another.
func (e *Env) AddLocal(src, name, version string) (string, error) {
	return e.Store.AddLocal(src, name, version, func(dir string) error {
		if err := checkPackageArch(dir, e.Store.Arch); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		return nil
	})
}
