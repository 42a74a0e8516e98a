package lepton

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/internal/testutil"
	"github.com/opsdev/ops/qemu"
)

// TestSnapshotUsable: a snapshot is used only when its record names the
// VM's key and its file is whole; one for another key is replaced
// silently, a damaged one is said.
func TestSnapshotUsable(t *testing.T) {
	dir := t.TempDir()
	s := &snapshot{state: filepath.Join(dir, "img.state"), meta: filepath.Join(dir, "img.json"), key: "k1"}
	state := []byte("QEVM state bytes")
	sum, _, _ := crcOf(strings.NewReader(string(state)))
	for _, tc := range []struct {
		name        string
		meta, state string // "" leaves the file out
		ok          bool
		damaged     string
	}{
		{name: "none"},
		{name: "whole", meta: `{"key":"k1","size":16,"crc32c":` + strconv.FormatUint(uint64(sum), 10) + `}`, state: string(state), ok: true},
		{name: "another key", meta: `{"key":"k0","size":16}`, state: string(state)},
		{name: "record unreadable", meta: `{"key":`, state: string(state), damaged: "its record"},
		{name: "state missing", meta: `{"key":"k1","size":16}`, damaged: "no such file"},
		{name: "state cut short", meta: `{"key":"k1","size":16}`, state: "QEVM", damaged: "holds 4 bytes, not the 16 saved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(s.meta)
			os.Remove(s.state)
			if tc.meta != "" {
				testutil.WriteFile(t, s.meta, tc.meta)
			}
			if tc.state != "" {
				testutil.WriteFile(t, s.state, tc.state)
			}
			meta, ok, damaged := s.usable()
			if ok != tc.ok || (damaged == nil) != (tc.damaged == "") || damaged != nil && !strings.Contains(damaged.Error(), tc.damaged) {
				t.Fatalf("usable = %v, %v; want %v, %q", ok, damaged, tc.ok, tc.damaged)
			}
			if ok {
				checkFile := func() error {
					f, err := os.Open(s.state)
					if err != nil {
						return err
					}
					defer f.Close()
					return check(f, meta)
				}
				if err := checkFile(); err != nil {
					t.Fatalf("check of a whole state: %v", err)
				}
				// One byte changed, the size kept: the checksum finds it.
				testutil.WriteFile(t, s.state, "QEVM state byteS")
				if err := checkFile(); err == nil || !strings.Contains(err.Error(), "is not the one saved") {
					t.Fatalf("check of a changed state: %v", err)
				}
			}
		})
	}
}

// TestSnapshotKey: the key changes with QEMU's command line and with any
// file it names, and only then.
func TestSnapshotKey(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "vmlinux"), filepath.Join(dir, "img.initramfs")
	testutil.WriteFile(t, kernel, "kernel")
	testutil.WriteFile(t, initrd, "initrd")
	qemuBin := fakeQEMU(t, false, false)
	vm := qemu.VM{Binary: qemuBin, Machine: qemu.MicroVM, Kernel: kernel, Initrd: initrd, MemoryMB: 256, Channel: "org.opsdev.ops.0"}
	base, err := snapshotKey(vm, "")
	if err != nil {
		t.Fatal(err)
	}
	vm.Append = "console=ttyS0 tsc_early_khz=2100000 ops.snapshot=1"
	base, _ = snapshotKey(vm, "")
	for name, change := range map[string]func(*qemu.VM){
		"incoming state": func(v *qemu.VM) { v.Incoming = "/somewhere/else.state" },
		"QMP socket":     func(v *qemu.VM) { v.QMP = "/home/u/.ops/instances/web1/qmp.sock" },
		"TSC rate":       func(v *qemu.VM) { v.Append = "console=ttyS0 tsc_early_khz=2099998 ops.snapshot=1" },
	} {
		same := vm
		change(&same)
		if k, _ := snapshotKey(same, ""); k != base {
			t.Errorf("%s changed the key", name)
		}
	}
	for name, change := range map[string]func(){
		"memory":      func() { vm.MemoryMB = 512 },
		"CPUs":        func() { vm.CPUs = 2 },
		"accelerator": func() { vm.Accel = qemu.KVM },
		"command line": func() {
			vm.Append = "console=ttyS0 ops.debug=1"
		},
		"image rewritten": func() { testutil.WriteFile(t, initrd, "initrd, longer") },
		"kernel replaced": func() { testutil.WriteFile(t, kernel, "another kernel") },
		"QEMU replaced":   func() { testutil.WriteFile(t, qemuBin, "#!/bin/sh\nexit 1\n") },
	} {
		saved := vm
		change()
		k, err := snapshotKey(vm, "")
		if err != nil {
			t.Fatal(err)
		}
		if k == base {
			t.Errorf("%s: the key did not change", name)
		}
		vm = saved
		base, _ = snapshotKey(vm, "")
	}
}

// TestSharedSnapshotKey: the key of a VM booting a shared base names the
// base, not the image's link to it, and leaves the network card's MAC
// out (init is told its own past the restore); another base, or the
// base written again, is another key.
func TestSharedSnapshotKey(t *testing.T) {
	dir := t.TempDir()
	kernel, base := filepath.Join(dir, "vmlinux"), filepath.Join(dir, "bases", "k1")
	testutil.WriteFile(t, kernel, "kernel")
	testutil.WriteFile(t, base, "shared initramfs")
	link := func(name string) string {
		p := filepath.Join(dir, name, "image.base")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Link(base, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	qemuBin := fakeQEMU(t, false, false)
	vm := func(initrd, mac string) qemu.VM {
		return qemu.VM{Binary: qemuBin, Machine: qemu.MicroVM, Kernel: kernel, Initrd: initrd, MemoryMB: 256,
			Channel: "org.opsdev.ops.0", Append: "ops.snapshot=1", Net: qemu.Net{Mode: "tap", Tap: "ops-tap", MAC: mac}}
	}
	one, two := link("c1"), link("c2")
	k1, err := snapshotKey(vm(one, "02:42:c0:a8:00:02"), one)
	if err != nil {
		t.Fatal(err)
	}
	if k2, err := snapshotKey(vm(two, "02:42:c0:a8:00:03"), two); err != nil || k2 != k1 {
		t.Fatalf("two containers of one base: %s and %s (%v)", k1, k2, err)
	}
	other := filepath.Join(dir, "bases", "k2")
	testutil.WriteFile(t, other, "another initramfs")
	if k, _ := snapshotKey(vm(other, "02:42:c0:a8:00:02"), other); k == k1 {
		t.Fatal("another base kept the key")
	}
	os.Remove(base)
	testutil.WriteFile(t, base, "shared initramfs, written again")
	three := link("c3")
	if k, _ := snapshotKey(vm(three, "02:42:c0:a8:00:02"), three); k == k1 {
		t.Fatal("a base written again kept the key")
	}
}

func TestRestoreFailed(t *testing.T) {
	for msg, want := range map[string]bool{
		"qemu-system-x86_64: load of migration failed: Invalid argument":                                                 true,
		"qemu-system-x86_64: Unknown ramblock \"pc.ram\", cannot accept migration":                                       true,
		"qemu-system-x86_64: error while loading state for instance 0x0 of device 'serial'":                              true,
		"qemu-system-x86_64: -netdev user,id=n0,hostfwd=tcp:127.0.0.1:8080-:8080: Could not set up host forwarding rule": false,
		"qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied":                                    false,
	} {
		if got := restoreFailed(msg); got != want {
			t.Errorf("restoreFailed(%q) = %v", msg, got)
		}
	}
}

// writeSnapshots makes a snapshot for each name in the home's snapshots
// folder (a state of size bytes, sparse; its record; its lock), the first
// the oldest, a minute apart.
func writeSnapshots(t *testing.T, h Home, names []string, size int64) {
	t.Helper()
	if err := os.MkdirAll(h.snapshotsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, n := range names {
		s := h.snapshotOf(n)
		for _, p := range []string{s.state, s.meta, lockPath(s.state)} {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if p == s.state {
				if err := os.Truncate(p, size); err != nil {
					t.Fatal(err)
				}
			}
			at := now.Add(time.Duration(i-len(names)) * time.Minute)
			if err := os.Chtimes(p, at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkSnapshots checks which of the named snapshots are there, each with
// its state, record and lock, and which are gone with all three.
func checkSnapshots(t *testing.T, h Home, names []string, want map[string]bool) {
	t.Helper()
	for _, n := range names {
		s := h.snapshotOf(n)
		for _, p := range []string{s.state, s.meta, lockPath(s.state)} {
			_, err := os.Stat(p)
			if got := err == nil; got != want[n] {
				t.Errorf("%s: there %v, want %v", filepath.Base(p), got, want[n])
			}
		}
	}
}

// TestPruneSharedSnapshots: of the shared bases' snapshots, the two most
// recently saved stay; the others go with their lock files, but for one a
// run is saving (it holds the lock); an image's own snapshot is not one of
// them.
func TestPruneSharedSnapshots(t *testing.T) {
	h := Home{Dir: t.TempDir()}
	names := []string{"shared-a", "shared-b", "shared-c", "shared-d", "shared-e", "app"} // oldest first
	writeSnapshots(t, h, names, 0)
	unlock, err := fileutil.Lock(lockPath(h.snapshotOf("shared-b").state)) // being saved
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	h.pruneSharedSnapshots()
	checkSnapshots(t, h, names, map[string]bool{"shared-b": true, "shared-d": true, "shared-e": true, "app": true})
}

// TestPruneImageSnapshots: the images' own snapshots are kept, the most
// recently saved or restored first, while they fit imageSnapshotBudget;
// the one just saved stays whatever its age, and the shared bases' are
// not counted.
func TestPruneImageSnapshots(t *testing.T) {
	h := Home{Dir: t.TempDir()}
	names := []string{"img1", "img2", "img3", "img4", "shared-x"} // oldest first
	writeSnapshots(t, h, names, 800<<20)
	h.snapshotOf("img3").used() // restored just now: the newest
	h.pruneImageSnapshots(h.snapshotOf("img1"))
	// img3, then img4 fit (1.6 GiB); img2 would not; img1 was just saved.
	checkSnapshots(t, h, names, map[string]bool{"img1": true, "img3": true, "img4": true, "shared-x": true})
}
