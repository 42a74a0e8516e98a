package lepton

import (
	"errors"
	"fmt"
	"os"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/elfdeps"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/volume"
)

// Built is an image ready to boot, and the guest it is for.
type Built struct {
	*BuildResult
	Guest Guest
	Note  string // the one line ops prints when it chose the guest by falling back
	Took  time.Duration
	Plan  *Plan // what went into the image (nil for an existing image)
	// Mounts are the volumes the image mounts, found and checked.
	Mounts []volume.Mount
	// Shares are the host folders it mounts (virtio-9p on Nanos, virtio-fs
	// on the Linux guest).
	Shares []Share
}

// lockVolumes claims the image's volumes for one VM (see Volume.Lock),
// and shares a lock on the image itself, so that ops image delete
// refuses an image a VM is using; release frees them. An image that
// another ops has rebuilt since this one built it is an error, not a
// boot of what the other build wrote.
func (b *Built) lockVolumes() (release func(), err error) {
	var unlocks []func()
	release = func() {
		for _, u := range unlocks {
			u()
		}
	}
	if b.BuildResult != nil {
		// A missing image is left to QEMU to report.
		unlock, err := fileutil.ShareLock(b.Path)
		switch {
		case errors.Is(err, fileutil.ErrLocked):
			return func() {}, fmt.Errorf("image %s is being deleted; build it again", b.Path)
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return func() {}, goerrors.Wrap(err, 0)
		case err == nil:
			unlocks = append(unlocks, unlock)
		}
		if b.stamp != "" {
			if st, err := os.Stat(b.Path); err != nil || fileutil.Stamp(st) != b.stamp {
				release()
				return func() {}, fmt.Errorf("%s was built again by another ops while this one was starting it; run again", b.Path)
			}
		}
	}
	for _, m := range b.Mounts {
		unlock, err := m.Volume.Lock()
		if err != nil {
			release()
			return func() {}, err
		}
		unlocks = append(unlocks, unlock)
	}
	return release, nil
}

// Target says where an image goes: Output when set, else the ops home's
// images folder, named by RunConfig.ImageName or else DefaultName.
type Target struct {
	Output      string
	DefaultName string
	// Shared, when set, has a Nanos image written as an overlay over a
	// base it shares with images of the same contents (SharedParts).
	Shared *SharedParts
}

// name is the image's name: RunConfig.ImageName, else DefaultName.
func (t Target) name(c *Config) string {
	if c.RunConfig.ImageName != "" {
		return c.RunConfig.ImageName
	}
	return t.DefaultName
}

// resolve chooses the guest and finds where its image goes: a Built
// without its BuildResult yet, and the config with its Mounts as the
// image holds them (host folders, relative ones from dir, by their tags).
func (t Target) resolve(home Home, c *Config, dir string) (b *Built, out string, cm *Config, err error) {
	g, note, err := ChooseGuest(home, c)
	if err != nil {
		return nil, "", nil, err
	}
	if c.LocalFilesParentDirectory != "" {
		dir = resolveHost(dir, c.LocalFilesParentDirectory)
	}
	shares, volumes, manifest, err := splitShares(c.Mounts, dir)
	if err != nil {
		return nil, "", nil, err
	}
	mounts, err := home.Volumes().ResolveMounts(volumes, g.VolumeFormat())
	var fe *volume.FormatError
	if errors.As(err, &fe) {
		return nil, "", nil, fmt.Errorf("volume %s is a %s guest's volume; the %s guest cannot mount it (make one with ops volume create NAME --guest %s)",
			fe.Volume, VolumeGuest(fe.Have), g.Name(), g.Name())
	}
	if err != nil {
		return nil, "", nil, err
	}
	out = t.Output
	if out == "" {
		if out, err = home.imagePath(t.name(c) + g.imageSuffix()); err != nil {
			return nil, "", nil, err
		}
	}
	return &Built{Guest: g, Note: note, Mounts: mounts, Shares: shares}, out, withShares(c, manifest), nil
}

// Build is the whole way from a plan input to an image: the guest, the
// plan (with the guest's variables and the image's name as the default
// host name), then the image, or the existing one when nothing changed.
func Build(home Home, in PlanInput, t Target) (*Built, error) {
	start := time.Now()
	c := in.Config
	minRoot, err := ParseSize(c.BaseVolumeSz)
	if err != nil {
		return nil, fmt.Errorf("BaseVolumeSz: %w", err)
	}
	if err := checkProgramArch(in); err != nil {
		return nil, err
	}
	b, out, cm, err := t.resolve(home, c, in.Dir)
	if err != nil {
		return nil, err
	}
	in.Config = cm
	in.ImageName, in.GuestEnv = t.name(c), b.Guest.env()
	if b.Plan, err = newPlan(in); err != nil {
		return nil, err
	}
	if b.BuildResult, err = buildImage(imageSpec{Plan: b.Plan, Guest: b.Guest, Out: out, MinRoot: minRoot, Force: c.Force, Shared: t.Shared}); err != nil {
		return nil, err
	}
	b.Took = time.Since(start)
	return b, nil
}

// checkProgramArch refuses, before a guest is chosen or anything built, a
// program built for another architecture than the image's. What is not a
// readable ELF is left for the plan to say.
func checkProgramArch(in PlanInput) error {
	a, err := in.Config.Target()
	if err != nil {
		return err
	}
	host, err := programFile(in)
	if err != nil {
		return nil
	}
	info, err := elfdeps.ReadELF(host)
	if err != nil {
		return nil
	}
	return info.CheckArch(host, a)
}

// Existing is the image Build would write, as it is now, without
// building it (ops run --skipbuild).
func Existing(home Home, c *Config, t Target) (*Built, error) {
	b, out, _, err := t.resolve(home, c, "")
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil, fmt.Errorf("--skipbuild: no image at %s; build it first", out)
	}
	b.BuildResult = &BuildResult{Path: out, Reused: true, Size: st.Size(), Base: BaseOf(out)}
	return b, nil
}
