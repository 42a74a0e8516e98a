package pkgenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opsdev/ops/arch"
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

// FromImage makes a local package from a container image of the store's
// architecture (another is refused in one line): its layers flattened
// into sysroot/ (or, with Minimal, only what the program
// needs), the program and arguments from ENTRYPOINT and CMD, environment
// and working folder from the image config. It returns the package folder
// and a note when the entrypoint was a script ops skipped.
func FromImage(store packages.Store, img v1.Image, opt FromImageOptions) (string, string, error) {
	if opt.Name == "" || opt.Version == "" {
		return "", "", fmt.Errorf("pass --name and --version for the package")
	}
	p, err := localPackage(opt.Name, opt.Version)
	if err != nil {
		return "", "", err
	}
	if err := packages.CheckArch("the image", img, store.Arch); err != nil {
		return "", "", err
	}
	cfg, err := packages.ConfigOf(img)
	if err != nil {
		return "", "", err
	}
	tmp, err := staging(store, "image")
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
		if err := minimalRoot(rootfs, sysroot, prog, opt.Include, store.Arch); err != nil {
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
func minimalRoot(rootfs, dest, prog string, include []string, a arch.Arch) error {
	deps, err := elfdeps.NewResolverFor(rootfs, a).Resolve(elfdeps.ResolveInRoot(rootfs, prog), prog)
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

// ImagePackage makes a local package of a container image (an OCI
// reference, a docker-archive tarball or an OCI layout folder, loaded
// from e.Registry) that runs with the given entrypoint and command (nil:
// the image's own), and returns its folder. The package is named after
// the image and versioned by its digest (and the entrypoint and command),
// so an image is converted once. What it made of the image goes to Say.
func (e *Env) ImagePackage(ctx context.Context, ref string, entrypoint, command []string) (string, error) {
	img, err := e.Registry.LoadImage(ctx, ref)
	if err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	p := packages.Package{Name: imagePackageName(ref), Version: imagePackageVersion(d, entrypoint, command)}
	dir := e.Store.LocalDirOf(p)
	if _, err := os.Stat(filepath.Join(dir, packages.ManifestFile)); err == nil {
		return dir, nil
	}
	opt := FromImageOptions{Name: p.Name, Version: p.Version}
	if entrypoint != nil {
		if len(entrypoint) == 0 {
			return "", fmt.Errorf("entrypoint is empty; name the program")
		}
		opt.Program = entrypoint[0]
		opt.Args = append(append([]string{}, entrypoint[1:]...), command...)
	} else if command != nil {
		opt.Args = command
	}
	dir, note, err := FromImage(e.Store, img, opt)
	if err != nil {
		return "", err
	}
	if note != "" {
		e.say(note)
	}
	e.say(fmt.Sprintf("image %s (%s) is local package %s", ref, d, p.Ref()))
	return dir, nil
}

// imagePackageName is the name of an image's package: "image-" and the
// image's last path element without tag, digest or .tar, in the
// characters a package name may hold.
func imagePackageName(ref string) string {
	base := path.Base(strings.TrimSuffix(ref, ".tar"))
	base, _, _ = strings.Cut(base, "@")
	base, _, _ = strings.Cut(base, ":")
	return "image-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '-'
	}, strings.ToLower(base))
}

// imagePackageVersion is the version of an image's package: the image's
// digest, and a hash of the entrypoint and command when either is set.
func imagePackageVersion(d v1.Hash, entrypoint, command []string) string {
	version := d.Algorithm + "-" + d.Hex[:16]
	if entrypoint != nil || command != nil {
		b, _ := json.Marshal([][]string{entrypoint, command})
		h := sha256.Sum256(b)
		version += "-" + hex.EncodeToString(h[:4])
	}
	return version
}
