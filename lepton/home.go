package lepton

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opsdev/ops/arch"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/packages"
	"github.com/opsdev/ops/release"
	"github.com/opsdev/ops/volume"
)

// Home is the ops home folder (~/.ops, or $OPS_HOME/.ops), laid out as
// nanovms/ops lays it out so existing caches keep working:
//
//	<home>/latest.txt          the current Nanos release version
//	<home>/<version>/          kernel.img, boot.img, klibs/ (amd64)
//	<home>/<version>-arm/      kernel.img, bootaa64.efi, klibs/ (arm64)
//	<home>/images/             built images
//	<home>/volumes/            volumes, NAME:UUID.raw
//	<home>/packages/, local_packages/
//	<home>/instances/          instances' specs, states and consoles
//	<home>/compose/<project>/  a compose project's state
//	<home>/compose/.<project>.lock  held by its up or down at work
//	<home>/linux/<version>/    the Linux guest's unpacked kernel
//	<home>/kernels/<arch>/     a kernel package for another architecture, unpacked
//	<home>/profile             what ops profile printed last
//
// Its methods are the one place that builds paths into it: the packages
// below lepton take the folders they give.
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

// imagesDir holds built images.
func (h Home) imagesDir() string { return filepath.Join(h.Dir, "images") }

// imagePath is where an image named name is kept.
func (h Home) imagePath(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("image name %q must be a plain file name", name)
	}
	return filepath.Join(h.imagesDir(), name), nil
}

// Releases is the Nanos releases for a installed in the ops home: a
// folder per version (<version>-arm for arm64), and latest.txt naming the
// current one.
func (h Home) Releases(a arch.Arch) release.Store {
	return release.Store{Dir: h.Dir, LatestFile: filepath.Join(h.Dir, "latest.txt"), Arch: a}
}

// Volumes is the ops home's volumes folder. A TFS volume's seed folder is
// read as config.json's Dirs are.
func (h Home) Volumes() volume.Store {
	return volume.Store{Dir: filepath.Join(h.Dir, "volumes"), ReadTree: seedTree}
}

// seedTree reads a folder as the tree of a volume's root.
func seedTree(dir string) (*opsfs.Tree, error) {
	p := &Plan{Tree: opsfs.NewTree()}
	if err := p.walkDir(dir, "/", map[string]bool{}, false); err != nil {
		return nil, err
	}
	return p.Tree, nil
}

// Packages is the package store for arch: packages/<arch> (downloaded)
// and local_packages/<arch> (made here), kept as nanovms/ops keeps them.
func (h Home) Packages(a arch.Arch) packages.Store { return packages.Store{Home: h.Dir, Arch: a} }

// InstancesDir holds the instances, a folder each.
func (h Home) InstancesDir() string { return filepath.Join(h.Dir, "instances") }

// ComposeDir holds a compose project's state.
func (h Home) ComposeDir(project string) string { return filepath.Join(h.Dir, "compose", project) }

// ComposeLock is the file a compose up or down of project holds locked
// while it works on the project.
func (h Home) ComposeLock(project string) string {
	return filepath.Join(h.Dir, "compose", "."+project+".lock")
}

// KernelsDir holds the Linux guest's kernel for architecture a when it
// is not the host's: a distribution's kernel package unpacked there
// (boot/vmlinuz-*, lib/modules/<version>/, with modules.dep).
func (h Home) KernelsDir(a arch.Arch) string { return filepath.Join(h.Dir, "kernels", string(a)) }

// linuxKernelCache holds the Linux guest's unpacked kernels, a folder per
// kernel version.
func (h Home) linuxKernelCache() string { return filepath.Join(h.Dir, "linux") }

// digestsFile keeps host files' digests between builds
// (opsfs.DigestCache).
func (h Home) digestsFile() string { return filepath.Join(h.Dir, "cache", "digests") }

// snapshotsDir holds the saved states of images' VMs (snapshot.go).
func (h Home) snapshotsDir() string { return filepath.Join(h.Dir, "snapshots") }

// ProfileFile is where ops profile keeps what it printed.
func (h Home) ProfileFile() string { return filepath.Join(h.Dir, "profile") }
