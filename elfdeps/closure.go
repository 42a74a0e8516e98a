package elfdeps

import (
	"path"
	"runtime"
	"slices"
	"sort"
	"sync"
)

// Object is an ELF file in an image: the host file it is read from and
// its path in the guest.
type Object struct{ Host, Guest string }

// Image is the image a closure completes: what it holds already, and how
// a library found on the host is placed in it.
type Image interface {
	// Lookup finds guest in the image through its links: ok when
	// something is there, file when that is a regular file.
	Lookup(guest string) (file, ok bool)
	// Add places a library found on the host.
	Add(d Dep) error
}

// Closure gives every object the libraries it needs, the way the
// program's own are found: the image first, then the resolver's root,
// recursively. program is the program's guest path (its RPATH is
// searched for the libraries' needs too). It returns the guest folders
// outside the loader's defaults that now hold libraries, and, sorted,
// the libraries found nowhere ("NAME (needed by /guest/path)"), which are
// not an error: an extension module nobody imports must not stop a build.
func (r *Resolver) Closure(img Image, objs []Object, program string) (dirs, unresolved []string, err error) {
	infos := r.readELFs(objs)
	var exe *object
	interps := map[string]bool{}
	var queue []*object
	for i, ob := range objs {
		info := infos[i]
		if info == nil {
			continue
		}
		o := &object{host: ob.Host, guest: ob.Guest, info: info}
		if ob.Guest == program {
			exe = o
		}
		if info.Interp != "" {
			interps[path.Base(info.Interp)] = true
		}
		if len(info.Needed) > 0 || info.Interp != "" {
			queue = append(queue, o)
		}
	}
	missing := map[string]bool{}
	// Where a name is looked for depends only on the name for an object
	// with no search path of its own (nor the program's RPATH to inherit):
	// once found, it is found for every such object (an interpreter's
	// hundred extension modules all need libc.so.6).
	found := map[string]bool{}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		if o.info.Interp != "" {
			if _, ok := img.Lookup(o.info.Interp); !ok {
				dep, _, err := r.hostLib(cand{r.host(o.info.Interp), path.Clean(o.info.Interp)})
				switch {
				case err != nil:
					return nil, nil, err
				case dep == nil:
					missing[o.info.Interp+" (interpreter of "+o.guest+")"] = true
				default:
					if err := img.Add(*dep); err != nil {
						return nil, nil, err
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
			if inImage(img, cands) {
				found[name] = found[name] || plain
				continue
			}
			dep, info, err := r.firstHostLib(cands)
			if err != nil {
				return nil, nil, err
			}
			if dep == nil {
				missing[name+" (needed by "+o.guest+")"] = true
				continue
			}
			if err := img.Add(*dep); err != nil {
				return nil, nil, err
			}
			found[name] = found[name] || plain
			if d := path.Dir(dep.Guest); !r.isDefaultDir(d) && !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
			queue = append(queue, &object{host: dep.Host, guest: dep.Guest, info: info})
		}
	}
	for u := range missing {
		unresolved = append(unresolved, u)
	}
	sort.Strings(unresolved)
	return dirs, unresolved, nil
}

// inImage reports whether any candidate is a file in the image.
func inImage(img Image, cands []cand) bool {
	for _, c := range cands {
		if file, ok := img.Lookup(c.guest); ok && file {
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

// readELFs reads the ELF facts of objects in parallel: nil for a file
// that is not a usable ELF of the resolver's architecture (data, scripts, other machines' objects
// are simply not libraries' users here).
func (r *Resolver) readELFs(objs []Object) []*ELFInfo {
	out := make([]*ELFInfo, len(objs))
	workers := min(runtime.GOMAXPROCS(0), len(objs))
	var wg sync.WaitGroup
	next := make(chan int, len(objs))
	for i := range objs {
		next <- i
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if info, err := r.ReadELF(objs[i].Host); err == nil && info.Dynamic && info.Arch == r.arch {
					out[i] = info
				}
			}
		}()
	}
	wg.Wait()
	return out
}
