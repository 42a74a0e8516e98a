package lepton

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opsdev/ops/elfdeps"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/volume"
)

// Plan is a guest described independently of the guest kernel: the file
// tree, the program and how it starts, and network settings. Both image
// writers (Nanos TFS, Linux initramfs) read only a Plan.
type Plan struct {
	Tree        *opsfs.Tree
	Program     string   // guest path of the program
	Args        []string // argv, argv[0] included
	Env         []EnvVar // sorted by name
	Cwd         string
	Network     Network
	Mounts      map[string]string
	Passthrough map[string]any
	Klibs       []string
	Hostname    string
	// GiveBack are files the Linux guest's init sends the host when the
	// program has exited (PlanInput.GiveBack).
	GiveBack []string

	// What ops added on its own, for `ops build -v`: default files, and
	// libraries that ELF files other than the program need.
	Defaults []string
	Libs     []string
	// Unresolved lists libraries that an ELF file in the image (not the
	// program) needs and that neither the image nor the host has.
	Unresolved []string
}

// EnvVar is one environment variable.
type EnvVar struct{ Name, Value string }

// Network holds a static address; empty means DHCP (Nanos) or QEMU's
// user-mode defaults (Linux guest).
type Network struct {
	IP, Netmask, Gateway string
	NameServers          []string
	DHCP                 bool // ask DHCP (on a tap without an address, or when asked)
}

// PlanInput is what a plan is made from: the merged config, the program's
// host path as the user typed it, and the folder relative paths start from.
type PlanInput struct {
	Config  *Config
	Program string // host path of the ELF (as typed)
	Dir     string // working folder for relative Files, Dirs, MapDirs

	// Set when loading a package:
	ProgramGuest string   // guest path of the program (default /<file name>)
	Argv         []string // argv before the config's Args (default: the program as typed)
	Layers       []Layer  // host folders laid over the image first (a package's sysroot)
	Files        []Layer  // host files placed before the config's Files
	NoDeps       bool     // the layers already hold the program's libraries

	// Extra entries added last (compose writes /etc/hosts this way).
	Extra []opsfs.Entry
	// GiveBack are guest files whose contents the host takes back when
	// the program has exited (an OCI container's writable single-file
	// mounts; Machine.GiveBack): the Linux guest's init sends them, Nanos
	// leaves them in its writable image.
	GiveBack []string

	// Set by Build, for the default host name and environment.
	ImageName  string            // IMAGE_NAME, and the host name unless Hostname is set
	OpsVersion string            // OPS_VERSION
	GuestEnv   map[string]string // the guest's own variables (NANOS_VERSION)
}

// Layer places a host path at a guest path. A Root layer is a root
// filesystem (a package's sysroot): its symlinks are kept as written,
// since they name guest paths.
type Layer struct {
	Host, Guest string
	Root        bool
}

// newPlan makes a plan: the program and its ELF dependencies, then Dirs,
// MapDirs and Files, each layer able to replace what came before.
func newPlan(in PlanInput) (*Plan, error) {
	c := in.Config
	host, err := programFile(in)
	if err != nil {
		return nil, err
	}
	p := &Plan{
		Tree:        opsfs.NewTree(),
		Program:     "/" + filepath.Base(host),
		Cwd:         "/",
		Mounts:      c.Mounts,
		Passthrough: c.ManifestOptions(),
		Klibs:       c.NanosKlibs(),
		GiveBack:    in.GiveBack,
	}
	if c.CwdPath != "" {
		if p.Cwd, err = opsfs.CleanPath(c.CwdPath); err != nil {
			return nil, fmt.Errorf("Cwd: %w", err)
		}
	}
	if in.ProgramGuest != "" {
		if p.Program, err = opsfs.CleanPath(in.ProgramGuest); err != nil {
			return nil, err
		}
	}
	if err := p.addLayers(in); err != nil {
		return nil, err
	}
	target, err := c.Target()
	if err != nil {
		return nil, err
	}
	res := elfdeps.NewResolverFor(TargetRoot(c.TargetRoot, target), target)
	deps, err := p.addDeps(in, host, res)
	if err != nil {
		return nil, err
	}
	if err := p.addConfigFiles(c, in.Dir); err != nil {
		return nil, err
	}
	for _, e := range in.Extra {
		if err := p.Tree.Add(e); err != nil {
			return nil, err
		}
	}
	if err := p.addMountPoints(); err != nil {
		return nil, err
	}
	if c.NoDefaults {
		// localhost resolves without DNS, unless the image brings its own hosts.
		if _, ok := p.Tree.Get("/etc/hosts"); !ok {
			if err := p.Tree.Add(opsfs.Entry{Path: "/etc/hosts", Kind: opsfs.KindFile, Data: []byte("127.0.0.1\tlocalhost\n::1\tlocalhost\n")}); err != nil {
				return nil, err
			}
		}
	} else if err := p.addDefaults(in); err != nil {
		return nil, err
	}
	// The program last, so nothing replaces it.
	if err := p.addHostFile(host, p.Program); err != nil {
		return nil, err
	}
	if e, _ := p.Tree.Get(p.Program); e != nil {
		e.Mode = 0o755
	}
	libDirs, err := p.addLibraryClosure(res)
	if err != nil {
		return nil, err
	}
	argv := in.Argv
	if len(argv) == 0 {
		argv = []string{in.Program}
	}
	p.Args = append(append([]string(nil), argv...), c.Args...)
	if c.Argv0 != "" {
		p.Args[0] = c.Argv0
	}
	env := map[string]string{}
	if !c.NoDefaults {
		env = defaultEnv(in, p.Cwd)
	}
	if dirs := appendNew(deps.ExtraDirs, libDirs); len(dirs) > 0 {
		env["LD_LIBRARY_PATH"] = strings.Join(dirs, ":")
	}
	for k, v := range c.Env {
		env[k] = v
	}
	p.Env = sortedEnv(env)
	return p, p.setNetwork(c)
}

// addMountPoints makes the folder each volume is mounted on: Nanos mounts
// a volume only on a folder the root filesystem has.
func (p *Plan) addMountPoints() error {
	for _, name := range sortedKeys(p.Mounts) {
		_, mp, _, err := volume.ParseMount(name + ":" + p.Mounts[name])
		if err != nil {
			return fmt.Errorf("Mounts: %w", err)
		}
		if e, ok := p.lookup(mp); ok {
			if e.Kind != opsfs.KindDir {
				return fmt.Errorf("Mounts: %s (for volume %s) is a file in the image, not a folder", mp, name)
			}
			continue
		}
		if err := p.Tree.Add(opsfs.Entry{Path: mp, Kind: opsfs.KindDir, Mode: 0o755}); err != nil {
			return fmt.Errorf("Mounts: %w", err)
		}
	}
	return nil
}

// appendNew appends the elements of b that a lacks.
func appendNew(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// programFile is the program's host path, checked to be a regular file.
func programFile(in PlanInput) (string, error) {
	if in.Program == "" {
		return "", fmt.Errorf("no program: name an ELF file or set Program in config.json")
	}
	host := in.Program
	if !filepath.IsAbs(host) {
		host = filepath.Join(in.Dir, host)
	}
	st, err := os.Stat(host)
	if err != nil {
		return "", fmt.Errorf("program %s: %w", in.Program, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("program %s is not a regular file", in.Program)
	}
	return host, nil
}

// addLayers lays a package's sysroot, folders and files, before anything
// of the user's.
func (p *Plan) addLayers(in PlanInput) error {
	for _, l := range in.Layers {
		var err error
		if l.Root {
			err = p.addRoot(l.Host, l.Guest)
		} else {
			err = p.addDir(l.Host, l.Guest)
		}
		if err != nil {
			return err
		}
	}
	for _, l := range in.Files {
		if err := p.addAny(l.Host, l.Guest); err != nil {
			return err
		}
	}
	return nil
}

// addDeps adds the program's interpreter and libraries, found by reading
// its ELF (a package's layers already hold them: then the ELF is only
// checked).
func (p *Plan) addDeps(in PlanInput, host string, r *elfdeps.Resolver) (*elfdeps.Deps, error) {
	if in.NoDeps {
		info, err := r.ReadELF(host)
		if err == nil {
			err = info.CheckArch(host, r.Arch())
		}
		return &elfdeps.Deps{}, err
	}
	deps, err := r.Resolve(host, p.Program)
	if err != nil {
		return nil, err
	}
	if deps.Interp != nil {
		if err := p.addHostFile(deps.Interp.Host, deps.Interp.Guest); err != nil {
			return nil, err
		}
	}
	for _, d := range deps.Libs {
		if err := p.addHostFile(d.Host, d.Guest); err != nil {
			return nil, err
		}
	}
	return deps, nil
}

// addConfigFiles adds config.json's Dirs, MapDirs and Files, relative
// paths starting from dir; MapDirs patterns from the config file's folder
// (LocalFilesParentDirectory), as nanovms/ops reads them.
func (p *Plan) addConfigFiles(c *Config, dir string) error {
	mapDir := dir
	if c.LocalFilesParentDirectory != "" {
		mapDir = resolveHost(dir, c.LocalFilesParentDirectory)
	}
	for _, d := range c.Dirs {
		if err := p.addDir(resolveHost(dir, d), guestPathFor(d)); err != nil {
			return fmt.Errorf("Dirs: %w", err)
		}
	}
	for _, pat := range sortedKeys(c.MapDirs) {
		matches, err := filepath.Glob(resolveHost(mapDir, pat))
		if err != nil {
			return fmt.Errorf("MapDirs: bad pattern %q: %w", pat, err)
		}
		if len(matches) == 0 {
			return fmt.Errorf("MapDirs: %q matches no files", pat)
		}
		for _, m := range matches {
			dest := path.Join(guestPathFor(c.MapDirs[pat]), filepath.Base(m))
			if err := p.addAny(m, dest); err != nil {
				return fmt.Errorf("MapDirs: %w", err)
			}
		}
	}
	for _, f := range c.Files {
		if err := p.addAny(resolveHost(dir, f), guestPathFor(f)); err != nil {
			return fmt.Errorf("Files: %w", err)
		}
	}
	return nil
}

// setNetwork is the guest's address (static, or DHCP on a tap or when
// asked) and name servers, written to /etc/resolv.conf when given.
func (p *Plan) setNetwork(c *Config) error {
	rc := c.RunConfig
	p.Network = Network{IP: rc.IPAddress, Netmask: rc.NetMask, Gateway: rc.Gateway, NameServers: c.NameServers,
		DHCP: rc.IPAddress == "" && (rc.DHCP || rc.usesTap())}
	if len(c.NameServers) == 0 {
		return nil
	}
	var b strings.Builder
	for _, ns := range c.NameServers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	return p.Tree.Add(opsfs.Entry{Path: "/etc/resolv.conf", Kind: opsfs.KindFile, Data: []byte(b.String())})
}

func resolveHost(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// guestPathFor maps a config path to its guest path: relative paths land
// below the root at the same relative path.
func guestPathFor(p string) string {
	return path.Clean("/" + filepath.ToSlash(p))
}

// addHostFile adds a regular file's contents (following links).
func (p *Plan) addHostFile(host, guest string) error {
	st, err := os.Stat(host)
	if err != nil {
		return fmt.Errorf("%s: %w", host, err)
	}
	return p.addStatted(host, guest, st)
}

// addStatted adds a regular file whose status (through links) is st.
func (p *Plan) addStatted(host, guest string, st os.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", host)
	}
	return p.Tree.Add(opsfs.Entry{Path: guest, Kind: opsfs.KindFile, Source: host, Size: st.Size(), Mode: st.Mode().Perm(), Info: st})
}

// addAny adds a file or, recursively, a directory.
func (p *Plan) addAny(host, guest string) error {
	st, err := os.Stat(host)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return p.addDir(host, guest)
	}
	return p.addStatted(host, guest, st)
}

// addDir copies a host directory recursively. Symlinks stay symlinks when
// their target stays inside the copied tree; other links are followed.
func (p *Plan) addDir(hostDir, guestDir string) error {
	return p.walkDir(filepath.Clean(hostDir), guestDir, map[string]bool{}, false)
}

// walkDir copies a folder. Links that stay inside it (or all links, with
// keepLinks) are kept as links; others are followed, folders recursively,
// and a link back to a folder being copied is an error rather than an
// endless loop. hostDir itself may be a link to a folder.
func (p *Plan) walkDir(hostDir, guestDir string, active map[string]bool, keepLinks bool) error {
	info, err := os.Stat(hostDir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", hostDir)
	}
	real, err := filepath.EvalSymlinks(hostDir)
	if err != nil {
		return err
	}
	if active[real] {
		return fmt.Errorf("%s: symbolic links loop back to %s", hostDir, real)
	}
	active[real] = true
	defer delete(active, real)
	if err := p.Tree.Add(opsfs.Entry{Path: guestDir, Kind: opsfs.KindDir, Mode: info.Mode().Perm()}); err != nil {
		return err
	}
	return p.addScanned(hostDir, guestDir, scanTree(hostDir), active, keepLinks)
}

// addScanned adds a scanned folder's contents below guest, in
// filepath.WalkDir's order; root is the folder being copied.
func (p *Plan) addScanned(root, guest string, d *scannedDir, active map[string]bool, keepLinks bool) error {
	if d.err != nil {
		return d.err
	}
	for i := range d.ents {
		e := &d.ents[i]
		g := path.Join(guest, e.d.Name())
		if e.err != nil && e.d.Type().IsRegular() {
			return fmt.Errorf("%s: %w", e.host, e.err)
		}
		if e.err != nil {
			return e.err
		}
		switch t := e.d.Type(); {
		case t.IsDir():
			if err := p.Tree.Add(opsfs.Entry{Path: g, Kind: opsfs.KindDir, Mode: e.info.Mode().Perm()}); err != nil {
				return err
			}
			if err := p.addScanned(root, g, e.dir, active, keepLinks); err != nil {
				return err
			}
		case t&fs.ModeSymlink != 0:
			if keepLinks || linkStaysInside(root, e.host, e.target) {
				if err := p.Tree.Add(opsfs.Entry{Path: g, Kind: opsfs.KindSymlink, Target: e.target}); err != nil {
					return err
				}
				continue
			}
			st, err := os.Stat(e.host)
			if err != nil {
				return fmt.Errorf("%s: link to %s: %w", e.host, e.target, err)
			}
			if st.IsDir() {
				err = p.walkDir(e.host, g, active, false)
			} else {
				err = p.addStatted(e.host, g, st)
			}
			if err != nil {
				return err
			}
		case t.IsRegular():
			if err := p.addStatted(e.host, g, e.info); err != nil {
				return err
			}
		}
		// sockets, devices, fifos are not copied
	}
	return nil
}

// addRoot lays a root filesystem over guestDir: links stay links, as
// written (they name guest paths), and are never followed on the host.
func (p *Plan) addRoot(hostDir, guestDir string) error {
	return p.walkDir(hostDir, guestDir, map[string]bool{}, true)
}

// linkStaysInside reports whether a relative link at host path h resolves
// inside root.
func linkStaysInside(root, h, target string) bool {
	if filepath.IsAbs(target) {
		return false
	}
	r, err := filepath.Rel(root, filepath.Join(filepath.Dir(h), target))
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
}
