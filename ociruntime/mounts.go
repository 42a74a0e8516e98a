package ociruntime

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/lepton"
)

// engineFile reports whether dst is a file an engine writes for every
// container and binds in writable (its view of the network and the host
// name): its contents at create are copied into the image, which is
// what the guest reads.
func engineFile(dst string) bool {
	switch dst {
	case "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run/.containerenv":
		return true
	}
	return false
}

// kernelType reports whether a mount of type t is one a guest kernel
// provides for itself.
func kernelType(t string) bool {
	switch t {
	case "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "securityfs", "debugfs", "tracefs":
		return true
	}
	return false
}

// imageMounts is what the spec's mounts put into the image: the engine's
// files (Extra entries with their contents), read-only bind mounts
// copied in (files and folders, laid over the root filesystem), and
// empty folders for tmpfs mounts. What the guest kernel makes for itself
// (/proc, /sys, /dev and what is below them) is skipped; a writable bind
// mount or a volume is refused in one line naming it.
type imageMounts struct {
	Extra  []opsfs.Entry
	Layers []lepton.Layer // read-only folders
	Files  []lepton.Layer // read-only files
	// Shares are writable folders the guest mounts from the host (the
	// config's Mounts: host folder -> mount path): a Nanos guest through
	// virtio-9p, the Linux guest through virtio-fs.
	Shares map[string]string
	// GiveBack are writable files (docker -v FILE:PATH, Kubernetes's
	// /dev/termination-log): copied in like Files, and given back to the
	// host when the program exits: on Nanos read from the container's
	// image, which the guest writes (giveBack), on the Linux guest sent by
	// init on its channel (giveBackSent).
	GiveBack []lepton.Layer
	Notes    []string
}

func isBind(m Mount) bool {
	return m.Type == "bind" || m.Type == "rbind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

func readOnly(m Mount) bool {
	return slices.Contains(m.Options, "ro") || slices.Contains(m.Options, "readonly")
}

// under reports whether p is dir or below it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func planMounts(mounts []Mount) (imageMounts, error) {
	var im imageMounts
	for _, m := range mounts {
		dst := path.Clean(m.Destination)
		switch {
		case kernelType(m.Type):
			continue
		case under(dst, "/dev") && isBind(m) && !readOnly(m) && regularFile(m.Source):
			// Kubernetes's termination-log: a file the program writes.
			im.Files = append(im.Files, lepton.Layer{Host: m.Source, Guest: dst})
			im.GiveBack = append(im.GiveBack, lepton.Layer{Host: m.Source, Guest: dst})
			continue
		case under(dst, "/proc") || under(dst, "/sys") || under(dst, "/dev"):
			if dst != "/dev" && dst != "/dev/shm" && dst != "/dev/pts" && dst != "/dev/mqueue" {
				im.Notes = append(im.Notes, fmt.Sprintf("mount on %s skipped: the guest kernel makes %s itself", dst, topDir(dst)))
			}
			continue
		case m.Type == "tmpfs":
			im.Extra = append(im.Extra, opsfs.Entry{Path: dst, Kind: opsfs.KindDir, Mode: 0o1777})
			im.Notes = append(im.Notes, fmt.Sprintf("tmpfs on %s is an empty folder of the guest's root filesystem", dst))
			continue
		case !isBind(m):
			return im, fmt.Errorf("mount %s on %s (type %s): a unikernel cannot mount it (bind-mount a host folder instead: those are shared with the guest)", m.Source, dst, m.Type)
		}
		st, err := os.Stat(m.Source)
		if errors.Is(err, os.ErrNotExist) {
			return im, fmt.Errorf("mount %s on %s: the source does not exist", m.Source, dst)
		}
		if err != nil {
			return im, goerrors.Wrap(err, 0)
		}
		switch {
		case engineFile(dst) && st.Mode().IsRegular():
			b, err := os.ReadFile(m.Source)
			if err != nil {
				return im, goerrors.Wrap(err, 0)
			}
			im.Extra = append(im.Extra, opsfs.Entry{Path: dst, Kind: opsfs.KindFile, Data: b, Mode: 0o644})
		case !readOnly(m) && st.IsDir():
			if im.Shares == nil {
				im.Shares = map[string]string{}
			}
			im.Shares[m.Source] = dst
		case !readOnly(m) && st.Mode().IsRegular():
			im.Files = append(im.Files, lepton.Layer{Host: m.Source, Guest: dst})
			im.GiveBack = append(im.GiveBack, lepton.Layer{Host: m.Source, Guest: dst})
		case !readOnly(m):
			return im, fmt.Errorf("mount %s on %s: a unikernel shares folders and copies files; this is neither", m.Source, dst)
		case st.IsDir():
			im.Layers = append(im.Layers, lepton.Layer{Host: m.Source, Guest: dst})
		case st.Mode().IsRegular():
			im.Files = append(im.Files, lepton.Layer{Host: m.Source, Guest: dst})
		default:
			return im, fmt.Errorf("mount %s on %s: only files and folders can be copied into a unikernel", m.Source, dst)
		}
	}
	return im, nil
}

// regularFile reports whether p is a regular file.
func regularFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func topDir(p string) string {
	if i := strings.IndexByte(p[1:], '/'); i >= 0 {
		return p[:i+1]
	}
	return p
}
