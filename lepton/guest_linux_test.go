package lepton

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/guestinit"
	"github.com/opsdev/ops/internal/testutil"
	"github.com/opsdev/ops/linuxkernel"
	"github.com/opsdev/ops/qemu"
)

func TestLinuxCommandLine(t *testing.T) {
	cases := []struct {
		debug    bool
		khz      int
		has, not []string
	}{
		{false, 2596142, []string{"noreplace-smp", "tsc_early_khz=2596142", "quiet"}, []string{"ops.debug"}},
		{false, 0, []string{"noreplace-smp", "cryptomgr.notests", "initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs"}, []string{"tsc_early_khz"}},
		{true, 0, []string{"ops.debug=1"}, []string{"quiet"}},
	}
	for _, tc := range cases {
		s := " " + linuxCommandLine(tc.debug, tc.khz, arch.AMD64) + " "
		for _, w := range tc.has {
			if !strings.Contains(s, " "+w+" ") {
				t.Errorf("%q lacks %q", s, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(s, " "+w) {
				t.Errorf("%q has %q", s, w)
			}
		}
	}
}

// fakeModDir is a kernel's modules folder with the virtio, disk and
// virtio-fs drivers' entries of Debian's modules.dep, each module file
// holding its name.
func fakeModDir(t *testing.T) string {
	dir := t.TempDir()
	dep := `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/fuse/fuse.ko:
kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
`
	testutil.WriteFile(t, filepath.Join(dir, "modules.dep"), dep)
	for _, l := range strings.Split(strings.TrimSpace(dep), "\n") {
		mod, _, _ := strings.Cut(l, ":")
		testutil.WriteFile(t, filepath.Join(dir, mod), path.Base(mod))
	}
	return dir
}

// cpioNames are the names in a newc cpio archive.
func cpioNames(t *testing.T, b []byte) []string {
	var names []string
	for len(b) >= 110 {
		hex := func(i int) int {
			n, err := strconv.ParseUint(string(b[6+8*i:6+8*i+8]), 16, 32)
			if err != nil {
				t.Fatalf("cpio header: %v", err)
			}
			return int(n)
		}
		size, nameSize := hex(6), hex(11)
		name := string(b[110 : 110+nameSize-1])
		if name == "TRAILER!!!" {
			break
		}
		names = append(names, name)
		off := (110 + nameSize + 3) &^ 3
		b = b[(off+size+3)&^3:]
	}
	return names
}

// TestLinuxImageShares: an image with shares carries the virtio-fs
// driver and what it needs, not the disk driver unless it has volumes
// too, and its manifest lists the shares (by their "%N" entries' tags)
// apart from the volumes.
func TestLinuxImageShares(t *testing.T) {
	mods := fakeModDir(t)
	kern := &linuxkernel.Kernel{Version: "6.1", ModDir: mods}
	var err error
	if kern.Modules, err = linuxkernel.ModuleOrder(mods, linuxkernel.GuestModulesFor(arch.AMD64)); err != nil {
		t.Fatal(err)
	}
	g := &linuxGuest{Kernel: kern, Init: io.NewSectionReader(strings.NewReader("init"), 0, 4)}
	for _, tc := range []struct {
		name        string
		mounts      map[string]string
		has, hasnot []string
		shares      []guestinit.Share
		volumes     []guestinit.Mount
	}{
		{"no mounts", nil, []string{"virtio_mmio.ko"}, []string{"virtiofs", "fuse", "virtio_blk"}, nil, nil},
		{"shares", map[string]string{"%0": "/data", "%1": "/etc/app:ro"}, []string{"fuse.ko", "virtiofs.ko"}, []string{"virtio_blk"},
			[]guestinit.Share{{Tag: "0", Path: "/data"}, {Tag: "1", Path: "/etc/app", ReadOnly: true}}, nil},
		{"a share and a volume", map[string]string{"%0": "/srv", "db": "/var/db"}, []string{"fuse.ko", "virtiofs.ko", "virtio_blk.ko"}, nil,
			[]guestinit.Share{{Tag: "0", Path: "/srv"}}, []guestinit.Mount{{Label: "db", Path: "/var/db"}}},
		{"a volume", map[string]string{"db": "/var/db"}, []string{"virtio_blk.ko"}, []string{"virtiofs", "fuse"},
			nil, []guestinit.Mount{{Label: "db", Path: "/var/db"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Plan{Tree: opsfs.NewTree(), Program: "/app", Mounts: tc.mounts}
			f, err := os.Create(filepath.Join(t.TempDir(), "img"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := g.write(f, p, 0); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			names := strings.Join(cpioNames(t, b), " ")
			for _, w := range tc.has {
				if !strings.Contains(names, w) {
					t.Errorf("no %s in %s", w, names)
				}
			}
			for _, w := range tc.hasnot {
				if strings.Contains(names, w) {
					t.Errorf("%s in %s", w, names)
				}
			}
			if strings.Index(names, "fuse.ko") > strings.Index(names, "virtiofs.ko") {
				t.Errorf("virtiofs before fuse, which it needs: %s", names)
			}
			var m guestinit.Manifest
			if i := bytes.Index(b, []byte(`{"program"`)); i < 0 {
				t.Fatal("no manifest")
			} else if err := json.NewDecoder(bytes.NewReader(b[i:])).Decode(&m); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Shares, tc.shares) || !reflect.DeepEqual(m.Mounts, tc.volumes) {
				t.Errorf("shares %+v volumes %+v, want %+v and %+v", m.Shares, m.Mounts, tc.shares, tc.volumes)
			}
			for _, mod := range m.Modules {
				if !strings.Contains(names, strings.TrimPrefix(mod, "/")) {
					t.Errorf("manifest module %s not in the image", mod)
				}
			}
		})
	}
}

// TestVirtioFS: each share's virtiofsd listens in the boot's folder and
// acts as the folder's owner when ops is root, else as ops's user.
func TestVirtioFS(t *testing.T) {
	rootOwned, userOwned := t.TempDir(), t.TempDir()
	if os.Geteuid() == 0 {
		for _, d := range []string{filepath.Dir(userOwned), userOwned} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(userOwned, 1000, 1001); err != nil {
			t.Fatal(err)
		}
	}
	shares := []Share{{Host: rootOwned, Path: "/a", Tag: 0}, {Host: userOwned, Path: "/b", Tag: 1, ReadOnly: true}}
	for _, tc := range []struct {
		name       string
		euid, egid int
		owners     []string
	}{
		{"ops as a user", 1000, 1000, []string{"1000:1000", "1000:1000"}},
		{"ops as root", 0, 0, []string{folderOwner(rootOwned), folderOwner(userOwned)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := virtioFS(shares, "/run/x", tc.euid, tc.egid)
			if len(fs) != 2 {
				t.Fatalf("%+v", fs)
			}
			for i, s := range fs {
				if s.Source != shares[i].Host || s.Tag != strconv.Itoa(i) || s.Socket != fmt.Sprintf("/run/x/fs%d.sock", i) || s.Owner != tc.owners[i] {
					t.Errorf("share %d: %+v, want owner %s", i, s, tc.owners[i])
				}
			}
		})
	}
	if os.Geteuid() == 0 && folderOwner(userOwned) != "1000:1001" {
		t.Errorf("owner %s", folderOwner(userOwned))
	}
}

// TestLinuxVMShares: a Linux guest's shares are virtio-fs ones with their
// sockets in the boot's folder, and a machine with shares (or volumes)
// boots cold: no snapshot point, nothing saved or restored.
func TestLinuxVMShares(t *testing.T) {
	g := &linuxGuest{Kernel: &linuxkernel.Kernel{Image: "vmlinux", SnapshotModules: []string{"virtio_console.ko"}}}
	dir := t.TempDir()
	home := Home{Dir: t.TempDir()}
	img := &BuildResult{Path: filepath.Join(home.imagesDir(), "app.initramfs"), Size: 1 << 20}
	shares := []Share{{Host: dir, Path: "/data", Tag: 0}}
	for _, tc := range []struct {
		name   string
		shares []Share
		snap   bool
	}{
		{"without shares", nil, true},
		{"with shares", shares, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Machine{Home: home, Built: &Built{BuildResult: img, Guest: g, Shares: tc.shares}}
			if got := m.snapshots(); got != tc.snap {
				t.Fatalf("snapshots %v, want %v", got, tc.snap)
			}
			vm, err := m.vm(qemu.TCG, "", "/run/boot")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(vm.Append, guestinit.SnapshotArg); got != tc.snap {
				t.Errorf("snapshot point %v in %q", got, vm.Append)
			}
			if len(vm.FS) != len(tc.shares) {
				t.Fatalf("virtio-fs %+v", vm.FS)
			}
			for _, s := range vm.FS {
				if s.Source != dir || s.Tag != "0" || s.Socket != "/run/boot/fs0.sock" {
					t.Errorf("virtio-fs %+v", s)
				}
			}
		})
	}
}

// TestReachable: a folder's owner reaches it through folders whose
// permission bits let them (as the owner, the group or anyone); root
// through any that anyone may search.
func TestReachable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give folders to another user")
	}
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(name string, mode os.FileMode, uid, gid int) string {
		d := filepath.Join(base, name, "share")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Dir(d), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Dir(d), uid, gid); err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name  string
		dir   string
		owner string
		want  bool
	}{
		{"open to all", mk("open", 0o755, 0, 0), "1000:1000", true},
		{"closed: root's only", mk("closed", 0o700, 0, 0), "1000:1000", false},
		{"closed but theirs", mk("theirs", 0o700, 1000, 1000), "1000:1000", true},
		{"their group's", mk("group", 0o750, 0, 1000), "1000:1000", true},
		{"another group's", mk("other", 0o750, 0, 1001), "1000:1000", false},
		{"root", mk("rootonly", 0o700, 0, 0), "0:0", true},
		{"bad owner", mk("bad", 0o755, 0, 0), "x", false},
		{"a folder that is gone", filepath.Join(base, "gone", "share"), "1000:1000", false},
	} {
		if got := reachable(tc.dir, tc.owner); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// Shared as root, then: the guest's files are root's.
	closed := filepath.Join(base, "closed", "share")
	if err := os.Chown(closed, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if fs := virtioFS([]Share{{Host: closed}}, "/run", 0, 0); fs[0].Owner != "0:0" {
		t.Errorf("owner %s of a folder its owner cannot reach", fs[0].Owner)
	}
}
