package lepton

import (
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

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
func (p *Plan) addLibraryClosure(r *Resolver) ([]string, error) {
	var files []*opsfs.Entry
	for _, e := range p.Tree.Entries() {
		if e.Kind == opsfs.KindFile && e.Source != "" && e.Size >= elfMin && maybeLoaded(e) {
			files = append(files, e)
		}
	}
	infos := r.readELFs(files)
	var exe *object
	interps := map[string]bool{}
	var queue []*object
	for i, e := range files {
		info := infos[i]
		if info == nil {
			continue
		}
		o := &object{host: e.Source, guest: e.Path, info: info}
		if e.Path == p.Program {
			exe = o
		}
		if info.Interp != "" {
			interps[path.Base(info.Interp)] = true
		}
		if len(info.Needed) > 0 || info.Interp != "" {
			queue = append(queue, o)
		}
	}
	var extra []string
	unresolved := map[string]bool{}
	// Where a name is looked for depends only on the name for an object
	// with no search path of its own (nor the program's RPATH to inherit):
	// once found, it is found for every such object (an interpreter's
	// hundred extension modules all need libc.so.6).
	found := map[string]bool{}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		if o.info.Interp != "" {
			if _, ok := p.lookup(o.info.Interp); !ok {
				dep, _, err := r.hostLib(cand{r.host(o.info.Interp), path.Clean(o.info.Interp)})
				switch {
				case err != nil:
					return nil, err
				case dep == nil:
					unresolved[o.info.Interp+" (interpreter of "+o.guest+")"] = true
				default:
					if err := p.addLib(dep); err != nil {
						return nil, err
					}
				}
			}
		}
		plain := len(o.info.RPath) == 0 && len(o.info.RunPath) == 0 && (exe == nil || o == exe || len(exe.info.RPath) == 0)
		for _, name := range o.info.Needed {
			// The loader is loaded already, under its soname.
			if interps[name] || plain && found[name] {
				continue
			}
			cands := r.candidates(name, o, exe)
			if p.inTree(cands) {
				found[name] = found[name] || plain
				continue
			}
			dep, info, err := r.firstHostLib(cands)
			if err != nil {
				return nil, err
			}
			if dep == nil {
				unresolved[name+" (needed by "+o.guest+")"] = true
				continue
			}
			if err := p.addLib(dep); err != nil {
				return nil, err
			}
			found[name] = found[name] || plain
			if d := path.Dir(dep.Guest); !isDefaultDir(d) && !slices.Contains(extra, d) {
				extra = append(extra, d)
			}
			queue = append(queue, &object{host: dep.Host, guest: dep.Guest, info: info})
		}
	}
	for u := range unresolved {
		p.Unresolved = append(p.Unresolved, u)
	}
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

// inTree reports whether any candidate is in the tree (through its links).
func (p *Plan) inTree(cands []cand) bool {
	for _, c := range cands {
		if e, ok := p.lookup(c.guest); ok && e.Kind == opsfs.KindFile {
			return true
		}
	}
	return false
}

func (r *Resolver) firstHostLib(cands []cand) (*Dep, *ELFInfo, error) {
	for _, c := range cands {
		dep, info, err := r.hostLib(c)
		if err != nil || dep != nil {
			return dep, info, err
		}
	}
	return nil, nil, nil
}

// addLib places a library the closure found on the host.
func (p *Plan) addLib(d *Dep) error {
	if err := p.addHostFile(d.Host, d.Guest); err != nil {
		return err
	}
	p.Libs = append(p.Libs, d.Guest)
	return nil
}

// readELFs reads the ELF facts of files in parallel: nil for a file that
// is not a usable x86-64 ELF (data, scripts, other machines' objects are
// simply not libraries' users here).
func (r *Resolver) readELFs(files []*opsfs.Entry) []*ELFInfo {
	out := make([]*ELFInfo, len(files))
	workers := min(runtime.GOMAXPROCS(0), len(files))
	var wg sync.WaitGroup
	next := make(chan int, len(files))
	for i := range files {
		next <- i
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if info, err := r.readELF(files[i].Source); err == nil && info.Dynamic {
					out[i] = info
				}
			}
		}()
	}
	wg.Wait()
	return out
}
