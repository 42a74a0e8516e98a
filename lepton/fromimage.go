package lepton

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opsdev/ops/elfdeps"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/packages"
)

// FromImageOptions shape a package made from a container image.
type FromImageOptions struct {
	Name, Version string
	Program       string   // guest path or name of the program (default: from ENTRYPOINT and CMD)
	Args          []string // replaces the image's CMD
	Minimal       bool     // keep only the program, its libraries and Include
	Include       []string // guest paths kept with Minimal
}

const defaultPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// PackageFromImage makes a local package from a container image: its
// layers flattened into sysroot/ (or, with Minimal, only what the program
// needs), the program and arguments from ENTRYPOINT and CMD, environment
// and working folder from the image config. It returns the package folder
// and a note when the entrypoint was a script ops skipped.
func PackageFromImage(store packages.Store, img v1.Image, opt FromImageOptions) (string, string, error) {
	if opt.Name == "" || opt.Version == "" {
		return "", "", fmt.Errorf("pass --name and --version for the package")
	}
	p := packages.Package{Name: opt.Name, Version: opt.Version}
	if _, err := packages.ParseRef(p.Ref()); err != nil {
		return "", "", err
	}
	cfg, err := packages.ConfigOf(img)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(store.LocalDir(), 0o755); err != nil {
		return "", "", err
	}
	tmp, err := os.MkdirTemp(store.LocalDir(), ".from-image-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	rootfs := filepath.Join(tmp, "rootfs")
	if err := packages.Flatten(img, rootfs); err != nil {
		return "", "", err
	}
	env := map[string]string{}
	for _, kv := range cfg.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	pathVar := env["PATH"]
	if pathVar == "" {
		pathVar = defaultPATH
	}
	argv := append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...)
	if opt.Args != nil {
		argv = append(append([]string(nil), cfg.Entrypoint...), opt.Args...)
	}
	if opt.Program != "" {
		argv = append([]string{opt.Program}, opt.Args...)
	}
	prog, args, note, err := chooseProgram(rootfs, argv, pathVar, cfg.WorkingDir)
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(tmp, p.DirName())
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", "", err
	}
	sysroot := filepath.Join(dir, "sysroot")
	if opt.Minimal {
		if err := minimalRoot(rootfs, sysroot, prog, opt.Include); err != nil {
			return "", "", err
		}
	} else if err := os.Rename(rootfs, sysroot); err != nil {
		return "", "", err
	}
	man := map[string]any{"Program": prog, "Args": args, "Version": opt.Version, "Env": env}
	if cfg.WorkingDir != "" {
		man["Cwd"] = cfg.WorkingDir
	}
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(dir, packages.ManifestFile), append(b, '\n'), 0o644); err != nil {
		return "", "", err
	}
	dest := store.LocalDirOf(p)
	return dest, note, fileutil.ReplaceDir(dir, dest, tmp)
}

// chooseProgram finds the first element of argv that names an ELF inside
// rootfs (searching PATH for bare names). Entrypoint scripts before it
// are dropped, since a unikernel runs one program and no shell.
func chooseProgram(rootfs string, argv []string, pathVar, workdir string) (prog string, args []string, note string, err error) {
	if len(argv) == 0 {
		return "", nil, "", fmt.Errorf("the image has no ENTRYPOINT or CMD; pass --program")
	}
	for i, a := range argv {
		var cands []string
		switch {
		case path.IsAbs(a):
			cands = []string{a}
		case strings.Contains(a, "/"):
			cands = []string{path.Join("/", workdir, a)}
		default:
			for _, d := range filepath.SplitList(pathVar) {
				cands = append(cands, path.Join(d, a))
			}
		}
		for _, c := range cands {
			host := elfdeps.ResolveInRoot(rootfs, c)
			st, err := os.Stat(host)
			if err != nil || !st.Mode().IsRegular() {
				continue
			}
			if _, err := elfdeps.ReadELF(host); err != nil {
				break // found, but a script: try the next element
			}
			if i > 0 {
				note = fmt.Sprintf("skipping %s (not an ELF program; a unikernel has no shell): the package runs %s", strings.Join(argv[:i], " "), c)
			}
			return c, argv[i:], note, nil
		}
	}
	return "", nil, "", fmt.Errorf("ENTRYPOINT and CMD (%s) name no ELF program in the image; pass --program", strings.Join(argv, " "))
}

// minimalRoot copies into dest only the program, its interpreter and
// libraries (resolved inside rootfs) and the included paths.
func minimalRoot(rootfs, dest, prog string, include []string) error {
	deps, err := elfdeps.NewResolver(rootfs).Resolve(elfdeps.ResolveInRoot(rootfs, prog), prog)
	if err != nil {
		return err
	}
	guests := []string{prog}
	if deps.Interp != nil {
		guests = append(guests, deps.Interp.Guest)
	}
	for _, l := range deps.Libs {
		guests = append(guests, l.Guest)
	}
	for _, g := range guests {
		to := filepath.Join(dest, filepath.FromSlash(g))
		if err := packages.CheckParents(dest, strings.TrimPrefix(g, "/")); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := fileutil.CopyFile(elfdeps.ResolveInRoot(rootfs, g), to, 0o755); err != nil {
			return err
		}
	}
	for _, inc := range include {
		g := path.Clean("/" + inc)
		src := elfdeps.ResolveInRoot(rootfs, g)
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("--include %s: not in the image", inc)
		}
		to := filepath.Join(dest, filepath.FromSlash(g))
		// An earlier include may have placed a link on the way (/etc, then
		// /etc/resolv.conf -> /run/...): never write through it.
		if err := packages.CheckParents(dest, strings.TrimPrefix(g, "/")); err != nil {
			return fmt.Errorf("--include %s: %w", inc, err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if st.IsDir() {
			if err := packages.CopyRootTree(src, to); err != nil {
				return err
			}
		} else if err := fileutil.CopyFile(src, to, st.Mode().Perm()|0o600); err != nil {
			return err
		}
	}
	return nil
}
