package lepton

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/opsdev/ops/qemu"
	"github.com/opsdev/ops/volume"
)

// Share is a host folder the guest mounts, through virtio-9p (Nanos) or
// virtio-fs (the Linux guest): a Mounts entry named by a folder's path
// ("/srv/data", "./data") rather than by a volume, as nanovms/ops takes
// it. Its tag is its place among the image's shares in the order of their
// host paths: the attachment ID by which the Nanos kernel matches the
// manifest's "%N" mounts entry, and the virtio-fs tag the Linux guest's
// init mounts.
type Share struct {
	Host     string // the host folder, absolute
	Path     string // where the guest mounts it
	ReadOnly bool
	Tag      int
}

// isShare reports whether a Mounts name is a host folder: a path (volume
// names hold no slash).
func isShare(name string) bool {
	return strings.HasPrefix(name, "/") || strings.HasPrefix(name, "./") || strings.HasPrefix(name, "../") || name == "." || name == ".."
}

// shareKey is a share's Mounts entry in the image's manifest.
func shareKey(tag int) string { return "%" + strconv.Itoa(tag) }

// shareTag is the tag of the share whose Mounts entry is key, if it is
// one's.
func shareTag(key string) (string, bool) {
	tag, ok := strings.CutPrefix(key, "%")
	return tag, ok
}

// splitShares takes the host folders out of mounts, relative ones from
// dir: the shares, the volumes' entries, and the entries the image's
// manifest holds (the volumes' and each share's "%N").
func splitShares(mounts map[string]string, dir string) (shares []Share, volumes, manifest map[string]string, err error) {
	volumes, manifest = map[string]string{}, map[string]string{}
	var hosts []string
	byHost := map[string]string{}
	for name, mp := range mounts {
		if !isShare(name) {
			volumes[name], manifest[name] = mp, mp
			continue
		}
		host := name
		if !filepath.IsAbs(host) {
			host = filepath.Join(dir, host)
		}
		host = filepath.Clean(host)
		st, err := os.Stat(host)
		if err != nil || !st.IsDir() {
			return nil, nil, nil, fmt.Errorf("Mounts: %s names no host folder (a volume's name has no slash; a folder to share must exist)", name)
		}
		if strings.Contains(host, ",") {
			return nil, nil, nil, fmt.Errorf("Mounts: %s: QEMU cannot take a folder whose path holds a comma", host)
		}
		if _, dup := byHost[host]; dup {
			return nil, nil, nil, fmt.Errorf("Mounts: %s is shared twice", host)
		}
		byHost[host] = mp
		hosts = append(hosts, host)
	}
	slices.Sort(hosts)
	for i, host := range hosts {
		_, p, ro, err := volume.ParseMount("share:" + byHost[host])
		if err != nil {
			return nil, nil, nil, fmt.Errorf("Mounts: %s: %w", host, err)
		}
		shares = append(shares, Share{Host: host, Path: p, ReadOnly: ro, Tag: i})
		manifest[shareKey(i)] = byHost[host]
	}
	return shares, volumes, manifest, nil
}

// withShares is c with its Mounts as the image's manifest holds them.
func withShares(c *Config, manifest map[string]string) *Config {
	if len(manifest) == len(c.Mounts) && maps.Equal(manifest, c.Mounts) {
		return c
	}
	cc := *c
	cc.Mounts = manifest
	return &cc
}

// qemuShares are a boot's shares as QEMU's (Nanos's 9p), and who QEMU
// runs as to reach them when ops runs as root: the owner of the shared
// folders, read-only ones too, which QEMU must read (root itself when root
// owns one, or they have several owners), else runAs as it was.
func qemuShares(shares []Share, runAs string) ([]qemu.Share, string) {
	var out []qemu.Share
	owner := ""
	for _, s := range shares {
		// Not QEMU's readonly=on: Nanos's 9p client opens every file for
		// reading and writing, which such an export refuses (EROFS), so
		// nothing in a :ro share could be read. The guest mounts it
		// read-only (the manifest's :ro), and the program cannot write.
		out = append(out, qemu.Share{Path: s.Host, Tag: strconv.Itoa(s.Tag)})
		if runAs == "" {
			continue
		}
		o := folderOwner(s.Host)
		if owner != "" && owner != o {
			o = "0:0"
		}
		owner = o
	}
	switch owner {
	case "":
		return out, runAs
	case "0:0":
		return out, ""
	}
	return out, owner
}

// folderOwner is "UID:GID" of a folder's owner; root's when it cannot be
// read.
func folderOwner(dir string) string {
	if st, err := os.Stat(dir); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			return fmt.Sprintf("%d:%d", sys.Uid, sys.Gid)
		}
	}
	return "0:0"
}

// virtioFS are a Linux-guest boot's shares as virtio-fs ones, each
// virtiofsd's socket in the boot's folder (scratch), each virtiofsd acting
// as the folder's owner when ops runs as root (qemu.startVirtiofsd says
// why), else as ops's own user. Root acts itself for a folder root owns,
// and for one whose owner cannot reach it (a folder above it is closed to
// them, as /root and a test's temporary folders are): the guest's files
// are root's then.
func virtioFS(shares []Share, scratch string, euid, egid int) []qemu.FS {
	var out []qemu.FS
	for _, s := range shares {
		owner := fmt.Sprintf("%d:%d", euid, egid)
		if euid == 0 {
			if owner = folderOwner(s.Host); !reachable(s.Host, owner) {
				owner = "0:0"
			}
		}
		out = append(out, qemu.FS{Source: s.Host, Tag: strconv.Itoa(s.Tag), Owner: owner,
			Socket: filepath.Join(scratch, fmt.Sprintf("fs%d.sock", s.Tag))})
	}
	return out
}

// reachable reports whether owner ("UID:GID", without other groups) may
// go through every folder above dir, by their permission bits.
func reachable(dir, owner string) bool {
	var uid, gid uint32
	if _, err := fmt.Sscanf(owner, "%d:%d", &uid, &gid); err != nil {
		return false
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return false
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		bit := os.FileMode(0o001)
		switch {
		case uid == 0:
			bit = 0o111
		case sys.Uid == uid:
			bit = 0o100
		case sys.Gid == gid:
			bit = 0o010
		}
		if st.Mode().Perm()&bit == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}
