package lepton

import (
	"path"
	"sort"
	"strings"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/elfdeps"
	opsfs "github.com/opsdev/ops/fs"
)

// elfMin is the size of the smallest ELF header; smaller files are not
// opened at all.
const elfMin = 64

// addLibraryClosure gives every ELF file in the tree (an interpreter's
// extension modules, helper programs in Dirs, a package's binaries) the
// libraries it needs, the way the program's own are found: the image's
// tree first, then TargetRoot or the host, recursively. It returns the
// guest folders outside the loader's defaults that now hold libraries.
// Libraries found nowhere are recorded in p.Unresolved, not an error: an
// extension module nobody imports must not stop a build.
func (p *Plan) addLibraryClosure(r *elfdeps.Resolver) ([]string, error) {
	var objs []elfdeps.Object
	for _, e := range p.Tree.Entries() {
		if e.Kind == opsfs.KindFile && e.Source != "" && e.Size >= elfMin && maybeLoaded(e) {
			objs = append(objs, elfdeps.Object{Host: e.Source, Guest: e.Path})
		}
	}
	extra, unresolved, err := r.Closure(planLibs{p}, objs, p.Program)
	if err != nil {
		return nil, err
	}
	p.Unresolved = append(p.Unresolved, unresolved...)
	sort.Strings(p.Unresolved)
	return extra, nil
}

// maybeLoaded reports whether the loader could ever map e: a program has
// an execute bit (exec needs one) and a shared object is named *.so or
// *.so.N. The rest (a standard library's 1,400 .py files, data) is never
// opened: opening every file cost more than the whole closure otherwise.
func maybeLoaded(e *opsfs.Entry) bool {
	return e.Mode&0o111 != 0 || strings.Contains(path.Base(e.Path), ".so")
}

// planLibs is a plan as the library closure sees it.
type planLibs struct{ p *Plan }

// Lookup finds guest in the tree, through its links.
func (l planLibs) Lookup(guest string) (file, ok bool) {
	e, ok := l.p.lookup(guest)
	return ok && e.Kind == opsfs.KindFile, ok
}

// Add places a library the closure found on the host.
func (l planLibs) Add(d elfdeps.Dep) error {
	if err := l.p.addHostFile(d.Host, d.Guest); err != nil {
		return err
	}
	l.p.Libs = append(l.p.Libs, d.Guest)
	return nil
}

// TargetRoot is the root folder a's programs find their libraries in:
// root (TargetRoot in config.json, --target-root) when set; else this
// machine's own for its own architecture, and Debian's cross root for
// another (/usr/aarch64-linux-gnu, from libc6-arm64-cross, for arm64
// programs on an x86-64 host).
func TargetRoot(root string, a arch.Arch) string {
	switch {
	case root != "":
		return root
	case a == arch.Host():
		return "/"
	}
	return "/usr/" + a.Triplet()
}
