package lepton

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/packages"
)

// Home is the ops home folder (~/.ops, or $OPS_HOME/.ops), laid out as
// nanovms/ops lays it out so existing caches keep working:
//
//	<home>/latest.txt          the current Nanos release version
//	<home>/<version>/          kernel.img, boot.img, klibs/
//	<home>/images/             built images
//	<home>/packages/, local_packages/
type Home struct{ Dir string }

// DefaultHome is $OPS_HOME/.ops, else ~/.ops. OPS_HOME names the folder
// that holds .ops, as in nanovms/ops, so a home it made is found as it is.
func DefaultHome() (Home, error) {
	if d := os.Getenv("OPS_HOME"); d != "" {
		return Home{Dir: filepath.Join(d, ".ops")}, nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return Home{}, fmt.Errorf("finding the home folder (set OPS_HOME): %w", err)
	}
	return Home{Dir: filepath.Join(h, ".ops")}, nil
}

// ImagesDir holds built images.
func (h Home) ImagesDir() string { return filepath.Join(h.Dir, "images") }

// Release is an installed Nanos kernel release.
type Release struct {
	Version string
	Dir     string
	Kernel  string // kernel.img
	Boot    string // boot.img
	KlibDir string
}

var versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$`) })

// ValidVersion reports whether v is usable as a release folder name.
func ValidVersion(v string) bool {
	return versionRE().MatchString(v) && v != "images" && v != "packages"
}

// ErrNoRelease means no Nanos release is installed.
var ErrNoRelease = errors.New("no Nanos release is installed")

// Latest is the version named in latest.txt.
func (h Home) Latest() (string, error) {
	b, err := os.ReadFile(filepath.Join(h.Dir, "latest.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return "", ErrNoRelease
	}
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if !ValidVersion(v) {
		return "", fmt.Errorf("%s names no valid version (%q)", filepath.Join(h.Dir, "latest.txt"), v)
	}
	return v, nil
}

// Release returns an installed release; version "" means the latest.
func (h Home) Release(version string) (*Release, error) {
	if version == "" {
		v, err := h.Latest()
		if err != nil {
			return nil, err
		}
		version = v
	}
	if !ValidVersion(version) {
		return nil, fmt.Errorf("%q is not a release version", version)
	}
	dir := filepath.Join(h.Dir, version)
	r := &Release{Version: version, Dir: dir, Kernel: filepath.Join(dir, "kernel.img"),
		Boot: filepath.Join(dir, "boot.img"), KlibDir: filepath.Join(dir, "klibs")}
	if _, err := os.Stat(r.Kernel); err != nil {
		installed := h.Installed()
		if len(installed) == 0 {
			return nil, fmt.Errorf("Nanos %s: %w", version, ErrNoRelease)
		}
		return nil, fmt.Errorf("Nanos %s is not installed (installed: %s)", version, strings.Join(installed, ", "))
	}
	return r, nil
}

// Installed lists installed release versions, oldest first.
func (h Home) Installed() []string {
	ents, _ := os.ReadDir(h.Dir)
	var out []string
	for _, e := range ents {
		if e.IsDir() && ValidVersion(e.Name()) {
			if _, err := os.Stat(filepath.Join(h.Dir, e.Name(), "kernel.img")); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return versionLess(out[i], out[j]) })
	return out
}

func versionLess(a, b string) bool { return packages.VersionLess(a, b) }

// CheckKernel checks that a kernel.img is a 64-bit x86 ELF.
func CheckKernel(p string) error {
	f, err := elf.Open(p)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return goerrors.Wrap(fmt.Errorf("kernel: %w", err), 0) // cannot be read at all
	}
	if err != nil {
		return fmt.Errorf("%s is not an ELF kernel: %w", p, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%s is a %s %s kernel; want x86-64", p, f.Class, f.Machine)
	}
	return nil
}

// CheckBoot checks boot.img's signature and filesystem region record.
func CheckBoot(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if _, err := opsfs.ParseBootImg(b); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// CheckReleaseDir checks a folder laid out as a release.
func CheckReleaseDir(dir string) error {
	if err := CheckKernel(filepath.Join(dir, "kernel.img")); err != nil {
		return err
	}
	return CheckBoot(filepath.Join(dir, "boot.img"))
}
