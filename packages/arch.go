package packages

import (
	"github.com/opsdev/ops/arch"
)

// IndexArch is the name the package index gives a in an entry's arch
// field, as nanovms/ops writes and reads it: x86_64 for amd64, arm64 for
// arm64.
func IndexArch(a arch.Arch) string {
	if a == arch.AMD64 {
		return "x86_64"
	}
	return string(a)
}

// Target is the architecture a package is built for: its arch field read
// as arch.Parse reads names (x86_64 and amd64 alike). An entry without one
// is amd64: the index named no architecture before it held arm64
// packages, and those entries' tarballs are at the amd64 address. false:
// an architecture ops does not build for.
func (p Package) Target() (arch.Arch, bool) {
	if p.Arch == "" {
		return arch.AMD64, true
	}
	a, err := arch.Parse(p.Arch)
	return a, err == nil
}

// ForArch keeps the packages built for a, in order.
func ForArch(pkgs []Package, a arch.Arch) []Package {
	var out []Package
	for _, p := range pkgs {
		if t, ok := p.Target(); ok && t == a {
			out = append(out, p)
		}
	}
	return out
}

// archName is the architecture p is built for, as the index names it.
func (p Package) archName() string {
	if p.Arch == "" {
		return IndexArch(arch.AMD64)
	}
	return p.Arch
}
