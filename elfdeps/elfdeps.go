// Package elfdeps reads ELF programs and libraries (headers only: ops
// never runs them) and finds the shared libraries they need the way the
// dynamic loader would, inside a root folder.
package elfdeps

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opsdev/ops/arch"
)

// ELFInfo is what ops needs to know about a program or library, read from
// its headers only: ops never runs the user's binary.
type ELFInfo struct {
	Arch    arch.Arch // the machine it is built for
	Interp  string    // PT_INTERP, empty for static programs
	Needed  []string  // DT_NEEDED
	RPath   []string
	RunPath []string
	Dynamic bool // has a dynamic section (static-PIE too)
}

// errNotELF marks a file that is not an ELF object.
var errNotELF = errors.New("not an ELF file")

// ErrOtherMachine marks an ELF built for a machine ops does not build
// images for.
var ErrOtherMachine = errors.New("ops runs 64-bit x86-64 (amd64) and aarch64 (arm64) programs")

// CheckArch says, in one line naming both, when the program at name is
// built for another architecture than the image's.
func (e *ELFInfo) CheckArch(name string, want arch.Arch) error {
	if e.Arch == want {
		return nil
	}
	return fmt.Errorf("%s is an %s (%s) program, but the image is for %s (%s): build with --arch %s, or give a program built for %s",
		name, e.Arch, e.Arch.Kernel(), want, want.Kernel(), e.Arch, want)
}

// ReadELF reads the dynamic linking facts of a 64-bit ELF built for an
// architecture ops builds for (amd64 or arm64).
func ReadELF(p string) (*ELFInfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return readELF(f, st.Size(), p)
}

// readELF reads an ELF of size bytes. Headers that claim more bytes than
// the file holds are refused before anything is allocated for them.
func readELF(r io.ReaderAt, size int64, name string) (info *ELFInfo, err error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, fmt.Errorf("%s: %w", name, errNotELF)
	}
	// debug/elf can panic on some malformed inputs; turn that into an error.
	defer func() {
		if r := recover(); r != nil {
			info, err = nil, fmt.Errorf("%s: malformed ELF: %v", name, r)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%s: malformed ELF: %w", name, err)
	}
	a, ok := arch.ForELF(f.Machine)
	if f.Class != elf.ELFCLASS64 || !ok {
		return nil, fmt.Errorf("%s: built for %s %s: %w", name, f.Class, f.Machine, ErrOtherMachine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("%s: ELF type %s is not a program or shared library", name, f.Type)
	}
	for _, sec := range f.Sections {
		// FileSize: compressed sections (Go's DWARF) are smaller on disk.
		if sec.Type != elf.SHT_NOBITS && (sec.FileSize > uint64(size) || sec.Offset > uint64(size)-min(sec.FileSize, uint64(size))) {
			return nil, fmt.Errorf("%s: malformed ELF: section %q lies beyond the file", name, sec.Name)
		}
	}
	for _, p := range f.Progs {
		if p.Filesz > uint64(size) || p.Off > uint64(size)-min(p.Filesz, uint64(size)) {
			return nil, fmt.Errorf("%s: malformed ELF: a program header lies beyond the file", name)
		}
	}
	info = &ELFInfo{Arch: a}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			if p.Filesz > 4096 {
				return nil, fmt.Errorf("%s: interpreter path too long", name)
			}
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, fmt.Errorf("%s: reading PT_INTERP: %w", name, err)
			}
			info.Interp = strings.TrimRight(string(b), "\x00")
		case elf.PT_DYNAMIC:
			info.Dynamic = true
		}
	}
	if !info.Dynamic {
		return info, nil
	}
	var rp, rnp []string
	if info.Needed, rp, rnp, err = dynStrings(f); err != nil {
		return nil, fmt.Errorf("%s: reading dynamic section: %w", name, err)
	}
	for _, s := range rp {
		info.RPath = append(info.RPath, filepath.SplitList(s)...)
	}
	for _, s := range rnp {
		info.RunPath = append(info.RunPath, filepath.SplitList(s)...)
	}
	return info, nil
}

// dynStrings returns the dynamic section's DT_NEEDED, DT_RPATH and
// DT_RUNPATH strings, as debug/elf's DynString would for each tag, but
// reading the section and its string table once, not once a tag (a large
// library's string table is hundreds of kilobytes).
func dynStrings(f *elf.File) (needed, rpath, runpath []string, err error) {
	ds := f.SectionByType(elf.SHT_DYNAMIC)
	if ds == nil {
		return nil, nil, nil, nil // not dynamic, so no libraries
	}
	d, err := ds.Data()
	if err != nil {
		return nil, nil, nil, err
	}
	if len(d)%16 != 0 {
		return nil, nil, nil, errors.New("length of dynamic section is not a multiple of dynamic entry size")
	}
	if ds.Link == 0 || ds.Link >= uint32(len(f.Sections)) {
		return nil, nil, nil, errors.New("section has invalid string table link")
	}
	str, err := f.Sections[ds.Link].Data()
	if err != nil {
		return nil, nil, nil, err
	}
	for ; len(d) > 0; d = d[16:] {
		var to *[]string
		switch elf.DynTag(f.ByteOrder.Uint64(d[0:8])) {
		case elf.DT_NEEDED:
			to = &needed
		case elf.DT_RPATH:
			to = &rpath
		case elf.DT_RUNPATH:
			to = &runpath
		default:
			continue
		}
		// A string that starts outside the table or never ends is skipped.
		if v := f.ByteOrder.Uint64(d[8:16]); v < uint64(len(str)) {
			if end := bytes.IndexByte(str[v:], 0); end >= 0 {
				*to = append(*to, string(str[v:v+uint64(end)]))
			}
		}
	}
	return needed, rpath, runpath, nil
}

// Dep is one file the program needs at run time.
type Dep struct {
	Guest string // where the loader will look for it in the guest
	Host  string // the host file with its contents
}

// Deps is the result of resolving a program's dependencies.
type Deps struct {
	Interp    *Dep
	Libs      []Dep    // in the order found (breadth first)
	ExtraDirs []string // guest dirs outside the loader's defaults that hold libraries
}

// defaultLibDirs is where glibc's loader for a looks without a cache:
// Debian's multiarch folders first.
func defaultLibDirs(a arch.Arch) []string {
	t := a.Triplet()
	return []string{"/lib/" + t, "/usr/lib/" + t, "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
}

// Resolver finds shared libraries the way the dynamic loader would,
// inside a root folder ("/" for the host).
type Resolver struct {
	root     string
	arch     arch.Arch
	dirs     []string // ld.so.conf dirs, then the defaults
	defaults []string

	mu   sync.Mutex
	elfs map[string]elfRead // what readELF read, by host path
}

type elfRead struct {
	info *ELFInfo
	err  error
}

// ReadELF is the package's ReadELF, once a host file: a plan reads the program and its
// libraries while resolving them, and again (with every other ELF in the
// tree) for the closure.
func (r *Resolver) ReadELF(p string) (*ELFInfo, error) {
	r.mu.Lock()
	e, ok := r.elfs[p]
	r.mu.Unlock()
	if !ok {
		e.info, e.err = ReadELF(p)
		r.mu.Lock()
		if r.elfs == nil {
			r.elfs = map[string]elfRead{}
		}
		r.elfs[p] = e
		r.mu.Unlock()
	}
	return e.info, e.err
}

// NewResolver is a Resolver for programs of this machine's architecture.
func NewResolver(root string) *Resolver { return NewResolverFor(root, arch.Host()) }

// NewResolverFor is a Resolver for programs built for a, inside root ("" is
// the host's /); it reads root's /etc/ld.so.conf (with includes).
// Libraries built for another machine are passed over, as the loader
// passes them over.
func NewResolverFor(root string, a arch.Arch) *Resolver {
	if root == "" {
		root = "/"
	}
	r := &Resolver{root: root, arch: a, defaults: defaultLibDirs(a)}
	seen := map[string]bool{}
	r.readConf("/etc/ld.so.conf", seen, 0)
	for _, d := range r.defaults {
		if !seen[d] {
			seen[d] = true
			r.dirs = append(r.dirs, d)
		}
	}
	return r
}

// Arch is the architecture r resolves programs for.
func (r *Resolver) Arch() arch.Arch { return r.arch }

// Root is the folder r finds libraries in.
func (r *Resolver) Root() string { return r.root }

func (r *Resolver) host(guest string) string {
	if r.root == "/" {
		return guest
	}
	return ResolveInRoot(r.root, guest)
}

// ResolveInRoot maps a guest path to the host file it names inside root,
// following symlinks as the guest would: absolute targets start again at
// root and ".." never climbs above it. A path that does not exist maps to
// where it would be.
func ResolveInRoot(root, guest string) string {
	p := path.Clean("/" + guest)
	for hops := 0; hops < 40; hops++ {
		resolved := "/"
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		restart := false
		for i, part := range parts {
			if part == "" {
				continue
			}
			next := path.Join(resolved, part)
			st, err := os.Lstat(filepath.Join(root, filepath.FromSlash(next)))
			if err != nil || st.Mode()&os.ModeSymlink == 0 {
				resolved = next
				continue
			}
			target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(next)))
			if err != nil {
				resolved = next
				continue
			}
			rest := strings.Join(parts[i+1:], "/")
			if path.IsAbs(target) {
				p = path.Clean(target + "/" + rest)
			} else {
				p = path.Clean(resolved + "/" + target + "/" + rest)
			}
			restart = true
			break
		}
		if !restart {
			return filepath.Join(root, filepath.FromSlash(resolved))
		}
	}
	return filepath.Join(root, filepath.FromSlash(p))
}

func (r *Resolver) readConf(p string, seen map[string]bool, depth int) {
	if depth > 8 {
		return
	}
	f, err := os.Open(r.host(p))
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "include"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			pat := strings.TrimSpace(rest)
			if !path.IsAbs(pat) {
				pat = path.Join(path.Dir(p), pat)
			}
			matches, _ := filepath.Glob(r.host(pat))
			for _, m := range matches {
				rel, err := filepath.Rel(r.root, m)
				if err == nil {
					r.readConf("/"+filepath.ToSlash(rel), seen, depth+1)
				}
			}
			continue
		}
		for _, d := range strings.FieldsFunc(line, func(c rune) bool { return c == ':' || c == ',' || c == ' ' || c == '\t' }) {
			d = path.Clean(d)
			if path.IsAbs(d) && !seen[d] {
				seen[d] = true
				r.dirs = append(r.dirs, d)
			}
		}
	}
}

// object is an ELF being resolved: where it is on the host and in the guest.
type object struct {
	host, guest string
	info        *ELFInfo
}

// Resolve finds the interpreter and every library program needs, reading
// ELF headers only. guestPath is where the program will sit in the guest
// (it anchors $ORIGIN).
func (r *Resolver) Resolve(hostPath, guestPath string) (*Deps, error) {
	info, err := r.ReadELF(hostPath)
	if err != nil {
		return nil, err
	}
	if err := info.CheckArch(hostPath, r.arch); err != nil {
		return nil, err
	}
	deps := &Deps{}
	if info.Interp != "" {
		h := r.host(info.Interp)
		if _, err := os.Stat(h); err != nil {
			return nil, fmt.Errorf("%s needs the program interpreter %s, which is not in %s (set TargetRoot, or --target-root, to a root folder of %s libraries)", hostPath, info.Interp, r.root, r.arch)
		}
		deps.Interp = &Dep{Guest: info.Interp, Host: h}
	}
	exe := &object{host: hostPath, guest: guestPath, info: info}
	queue := []*object{exe}
	found := map[string]bool{}
	if info.Interp != "" {
		found[path.Base(info.Interp)] = true // the loader is already loaded, under its soname
	}
	extra := map[string]bool{}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		for _, name := range o.info.Needed {
			if found[name] {
				continue
			}
			dep, lib, tried, err := r.find(name, o, exe)
			if err != nil {
				return nil, err
			}
			if dep == nil {
				return nil, fmt.Errorf("library %s, needed by %s, was not found (searched %s)", name, o.host, strings.Join(tried, ", "))
			}
			found[name] = true
			deps.Libs = append(deps.Libs, *dep)
			if d := path.Dir(dep.Guest); !r.isDefaultDir(d) && !extra[d] && !strings.Contains(name, "/") {
				extra[d] = true
				deps.ExtraDirs = append(deps.ExtraDirs, d)
			}
			queue = append(queue, &object{host: dep.Host, guest: dep.Guest, info: lib})
		}
	}
	return deps, nil
}

func (r *Resolver) isDefaultDir(d string) bool { return slices.Contains(r.defaults, d) }

// find looks for one DT_NEEDED name in the order the loader uses: the
// object's DT_RPATH (and the executable's) unless it has DT_RUNPATH, then
// DT_RUNPATH, then ld.so.conf, then the default dirs. Candidates of another
// class or machine are skipped, as the loader does.
func (r *Resolver) find(name string, o, exe *object) (*Dep, *ELFInfo, []string, error) {
	cands := r.candidates(name, o, exe)
	var tried []string
	for _, c := range cands {
		tried = append(tried, path.Dir(c.guest))
		dep, info, err := r.hostLib(c)
		if err != nil {
			return nil, nil, nil, err
		}
		if dep != nil {
			return dep, info, nil, nil
		}
	}
	return nil, nil, tried, nil
}

// cand is a place the loader looks for a library: the guest path and the
// host file that would be there.
type cand struct{ host, guest string }

// candidates lists, in the loader's order, where it looks for name when o
// needs it in a process whose executable is exe: a name with a slash as
// it is; else RPATH (o's, then exe's, when o has no RUNPATH), RUNPATH,
// ld.so.conf and the default folders.
func (r *Resolver) candidates(name string, o, exe *object) []cand {
	originDir := func(ob *object, d string) cand {
		if strings.HasPrefix(d, "$ORIGIN") || strings.HasPrefix(d, "${ORIGIN}") {
			rest := strings.TrimPrefix(strings.TrimPrefix(d, "$ORIGIN"), "${ORIGIN}")
			return cand{filepath.Join(filepath.Dir(ob.host), filepath.FromSlash(rest)), path.Join(path.Dir(ob.guest), rest)}
		}
		return cand{r.host(d), path.Clean(d)}
	}
	if strings.Contains(name, "/") {
		if !path.IsAbs(name) {
			return []cand{{filepath.Join(filepath.Dir(o.host), name), path.Join(path.Dir(o.guest), name)}}
		}
		return []cand{{r.host(name), path.Clean("/" + name)}}
	}
	var dirs []cand
	if len(o.info.RunPath) == 0 {
		for _, d := range o.info.RPath {
			dirs = append(dirs, originDir(o, d))
		}
		if exe != nil && o != exe {
			for _, d := range exe.info.RPath {
				dirs = append(dirs, originDir(exe, d))
			}
		}
	}
	for _, d := range o.info.RunPath {
		dirs = append(dirs, originDir(o, d))
	}
	for _, d := range r.dirs {
		dirs = append(dirs, cand{r.host(d), d})
	}
	cands := make([]cand, 0, len(dirs))
	for _, d := range dirs {
		cands = append(cands, cand{filepath.Join(d.host, name), path.Join(d.guest, name)})
	}
	return cands
}

// hostLib checks a candidate on the host: nil when no usable library is
// there (missing, not a regular file, or an ELF of another class or
// machine, which the loader skips too).
func (r *Resolver) hostLib(c cand) (*Dep, *ELFInfo, error) {
	st, err := os.Stat(c.host)
	if err != nil || !st.Mode().IsRegular() {
		return nil, nil, nil
	}
	info, err := r.ReadELF(c.host)
	if err != nil {
		if errors.Is(err, errNotELF) || errors.Is(err, ErrOtherMachine) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	if info.Arch != r.arch {
		return nil, nil, nil
	}
	return &Dep{Guest: c.guest, Host: c.host}, info, nil
}
