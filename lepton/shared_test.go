package lepton

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsdev/ops/arch"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/guestinit"
	"github.com/opsdev/ops/internal/testutil"
	"github.com/opsdev/ops/linuxkernel"
	"github.com/opsdev/ops/qemu"
)

// TestSharedParts: images of one root filesystem built with SharedParts
// share one base, which the second build does not write again; each
// reads (base and overlay) as the disk of its plan written whole, and
// ReadImage reads its own files from it; a root filesystem changed too
// recently to be told apart by its times gets a base of its own, not
// kept; unlinked bases beyond Keep are removed, the least recently used
// first.
func TestSharedParts(t *testing.T) {
	home := Home{Dir: t.TempDir()}
	k := fakeRelease(t, home.Dir)
	g := &nanosGuest{Kernel: k}
	later := func() time.Time { return time.Now().Add(time.Hour) }
	bases := filepath.Join(t.TempDir(), "bases")
	rootfs, secrets, plan := sharedPlans(t)
	build := func(name, hostname string, sh *SharedParts) (*BuildResult, *Plan) {
		t.Helper()
		p := plan(name, hostname)
		res, err := buildImage(imageSpec{Plan: p, Guest: g, Out: filepath.Join(t.TempDir(), name), Shared: sh})
		if err != nil {
			t.Fatal(err)
		}
		return res, p
	}
	// whole is the disk of p written in one piece, its own files last.
	whole := func(p *Plan, sh *SharedParts) []byte {
		t.Helper()
		d, err := layoutNanos(p, k, 0, sh.own)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(t.TempDir(), "whole"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := d.WriteTo(f); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// check: the image reads as want through its overlay, and ReadImage
	// finds host name's hosts line in it.
	check := func(res *BuildResult, want []byte, hostname string) {
		t.Helper()
		if res.Base == "" {
			t.Fatalf("%s: no base", res.Path)
		}
		ov, err := os.Open(res.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer ov.Close()
		base, err := os.Open(res.Base)
		if err != nil {
			t.Fatal(err)
		}
		defer base.Close()
		size, err := qemu.OverlaySize(ov)
		if err != nil || size != int64(len(want)) {
			t.Fatalf("%s: overlay of %d bytes (%v), want %d", res.Path, size, err, len(want))
		}
		got, err := io.ReadAll(io.NewSectionReader(qemu.OverlayDisk{Overlay: ov, Base: base}, 0, size))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s over its base is not the disk written whole", res.Path)
		}
		err = home.ReadImage(res.Path, false, func(rd *opsfs.Reader) error {
			n, err := rd.Lookup("/etc/hosts")
			if err != nil {
				return err
			}
			b, err := rd.ReadFile(n)
			if err == nil && string(b) != "127.0.0.1 "+hostname+"\n" {
				t.Errorf("%s: /etc/hosts reads %q", res.Path, b)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sh := &SharedParts{Dir: bases, Own: []string{secrets}, now: later}
	one, p1 := build("one", "one", sh)
	check(one, whole(p1, sh), "one")
	ents, _ := os.ReadDir(bases)
	if len(ents) != 2 {
		t.Fatalf("bases after one build: %v, want a base and its digests", ents)
	}
	first, err := os.Stat(filepath.Join(bases, ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	two, p2 := build("two", "the-second-container", sh)
	check(two, whole(p2, sh), "the-second-container")
	if ents, _ := os.ReadDir(bases); len(ents) != 2 {
		t.Fatalf("bases after a second build: %v", ents)
	}
	st, err := os.Stat(two.Base)
	if err != nil || !os.SameFile(st, first) || linkCount(st) != 3 {
		t.Fatalf("the second image's base is not the first's (links %d): %v", linkCount(st), err)
	}
	if ov, _ := os.Stat(two.Path); ov.Size() > 1<<20 {
		for _, e := range p2.Tree.Entries() {
			if sh.own(e) && e.Kind == opsfs.KindFile {
				t.Logf("own: %s %d", e.Path, e.Size)
			}
		}
		t.Errorf("the second image's overlay holds %d bytes", ov.Size())
	}

	// Files changed just now: a base of the image's own, not kept.
	fresh := &SharedParts{Dir: filepath.Join(t.TempDir(), "fresh"), Own: []string{secrets}}
	three, p3 := build("three", "three", fresh)
	check(three, whole(p3, fresh), "three")
	if st, err := os.Stat(three.Base); err != nil || linkCount(st) != 1 {
		t.Fatalf("a fresh tree's base: %v", err)
	}
	if ents, _ := os.ReadDir(fresh.Dir); len(ents) != 0 {
		t.Fatalf("a fresh tree's base was kept: %v", ents)
	}

	// Pruning: three more contents with Keep 1, their images removed.
	keep := &SharedParts{Dir: bases, Own: []string{secrets}, Keep: 1, now: later}
	os.Remove(one.Path + baseSuffix)
	os.Remove(two.Path + baseSuffix)
	var last *BuildResult
	for i, s := range []string{"a", "b", "c"} {
		testutil.WriteFile(t, filepath.Join(rootfs, "etc/app.conf"), s)
		past := time.Now().Add(time.Duration(i-10) * time.Minute)
		os.Chtimes(filepath.Join(rootfs, "etc/app.conf"), past, past)
		if last != nil {
			os.Remove(last.Path + baseSuffix)
		}
		last, _ = build("prune-"+s, s, keep)
	}
	ents, _ = os.ReadDir(bases)
	if len(ents) != 4 { // the last image's base, b's (the most recent unlinked), and their digests
		t.Fatalf("bases after pruning with Keep 1: %v", ents)
	}
}

// sharedPlans makes a root filesystem (a program, a large file and a
// small one) and a folder for each image's own host file (a container's
// bind mount), and returns what makes the plan of an image of them with
// its own host name, variable, hosts file and host file.
func sharedPlans(t *testing.T) (rootfs, secrets string, plan func(name, hostname string) *Plan) {
	rootfs = filepath.Join(t.TempDir(), "rootfs")
	prog, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, filepath.Join(rootfs, "app"), string(prog))
	testutil.WriteFile(t, filepath.Join(rootfs, "data/big"), string(bytes.Repeat([]byte("shared "), 100000)))
	testutil.WriteFile(t, filepath.Join(rootfs, "etc/app.conf"), "x = 1\n")
	secrets = t.TempDir()
	return rootfs, secrets, func(name, hostname string) *Plan {
		t.Helper()
		c := &Config{RunConfig: RunConfig{}, Env: map[string]string{"HOSTNAME": hostname}, Hostname: hostname}
		secret := filepath.Join(secrets, name)
		testutil.WriteFile(t, secret, string(bytes.Repeat([]byte(hostname), 3000)))
		p, err := newPlan(PlanInput{Config: c, Program: filepath.Join(rootfs, "app"), ProgramGuest: "/app", Layers: []Layer{{Host: rootfs, Guest: "/", Root: true}}, NoDeps: true,
			Files: []Layer{{Host: secret, Guest: "/run/secret"}},
			Extra: []opsfs.Entry{{Path: "/etc/hosts", Kind: opsfs.KindFile, Data: []byte("127.0.0.1 " + hostname + "\n")}}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// TestLinuxSharedParts: Linux guest images of one root filesystem built
// with SharedParts share one initramfs, which the second build does not
// write again; each image is its own part, a cpio archive of its
// manifest and own files, which the VM hands the guest as a read-only
// disk with init's serial while the base is the initramfs. The base
// unpacked, then the own part over it (as the kernel and init do), holds
// the plan's tree and the image's manifest, with the disk's driver.
func TestLinuxSharedParts(t *testing.T) {
	mods := fakeModDir(t)
	kern := &linuxkernel.Kernel{Version: "6.1", ModDir: mods, Image: "vmlinuz"}
	var err error
	if kern.Modules, err = linuxkernel.ModuleOrder(mods, linuxkernel.GuestModulesFor(arch.AMD64)); err != nil {
		t.Fatal(err)
	}
	g := &linuxGuest{Kernel: kern, Init: io.NewSectionReader(strings.NewReader("init"), 0, 4)}
	_, _, plan := sharedPlans(t)
	sh := &SharedParts{Dir: filepath.Join(t.TempDir(), "bases"), now: func() time.Time { return time.Now().Add(time.Hour) }}
	var firstBase os.FileInfo
	for i, hostname := range []string{"one", "the-second-one"} {
		p := plan(hostname, hostname)
		for _, e := range p.Tree.Entries() {
			if e.Path == "/run/secret" {
				sh.Own = []string{e.Source}
			}
		}
		res, err := buildImage(imageSpec{Plan: p, Guest: g, Out: filepath.Join(t.TempDir(), "image.initramfs"), Shared: sh})
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(res.Base)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstBase = st
		} else if !os.SameFile(st, firstBase) {
			t.Fatal("the second image's base is not the first's")
		}
		root := t.TempDir()
		for _, part := range []string{res.Base, res.Path} {
			f, err := os.Open(part)
			if err != nil {
				t.Fatal(err)
			}
			err = guestinit.UnpackCPIO(f, root)
			f.Close()
			if err != nil {
				t.Fatalf("%s: %v", part, err)
			}
		}
		for _, e := range p.Tree.Entries() {
			if e.Kind != opsfs.KindFile {
				continue
			}
			want := e.Data
			if want == nil {
				if want, err = os.ReadFile(e.Source); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := os.ReadFile(filepath.Join(root, e.Path)); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes (%v), want %d", e.Path, len(got), err, len(want))
			}
		}
		k, err := g.kernelFor(p, true)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(initManifest(p, k, false))
		if got, err := os.ReadFile(filepath.Join(root, manifestPath)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("manifest %s (%v), want %s", got, err, want)
		}
		if !strings.Contains(string(want), "virtio_blk") {
			t.Errorf("no disk driver in the manifest %s", want)
		}
		vm, err := g.VM(Boot{Image: res, Accel: qemu.TCG})
		if err != nil {
			t.Fatal(err)
		}
		if vm.Initrd != res.Base || len(vm.Drives) != 1 || vm.Drives[0] != (qemu.Drive{File: res.Path, ReadOnly: true, Serial: ownSerial}) {
			t.Errorf("VM: initrd %s, drives %+v", vm.Initrd, vm.Drives)
		}
		// With a snapshot point the own part comes on the channel, and
		// the machine sends it.
		g.Kernel.SnapshotModules = []string{filepath.Join(mods, "kernel/drivers/virtio/virtio.ko")}
		vm, err = g.VM(Boot{Image: res, Accel: qemu.TCG, Snapshot: true})
		g.Kernel.SnapshotModules = nil
		if err != nil {
			t.Fatal(err)
		}
		m := &Machine{Built: &Built{BuildResult: res, Guest: g}}
		if vm.Initrd != res.Base || len(vm.Drives) != 0 || vm.Channel == "" || m.ownOnChannel(vm) != res.Path {
			t.Errorf("VM with a snapshot point: initrd %s, drives %+v, channel %q, own on the channel %q", vm.Initrd, vm.Drives, vm.Channel, m.ownOnChannel(vm))
		}
	}
	if ents, _ := os.ReadDir(sh.Dir); len(ents) != 2 {
		t.Errorf("bases: %v, want one and its digests", ents)
	}
}

// TestParseBaseDigests: the digests beside a base read back only whole
// and written in this boot.
func TestParseBaseDigests(t *testing.T) {
	d := [][32]byte{{1, 2, 3}, {4}}
	good := encodeBaseDigests("boot-a", d)
	flipped := bytes.Clone(good)
	flipped[10] ^= 1
	for _, c := range []struct {
		name string
		b    []byte
		boot string
		ok   bool
	}{
		{"whole", good, "boot-a", true},
		{"none", encodeBaseDigests("boot-a", nil), "boot-a", true},
		{"another boot", good, "boot-b", false},
		{"torn", good[:len(good)-5], "boot-a", false},
		{"damaged", flipped, "boot-a", false},
		{"empty", nil, "boot-a", false},
	} {
		got, ok := parseBaseDigests(c.b, c.boot)
		if ok != c.ok {
			t.Errorf("%s: %v %v", c.name, got, ok)
		}
		if c.name == "whole" && (len(got) != 2 || got[0] != d[0] || got[1] != d[1]) {
			t.Errorf("whole: read %v", got)
		}
	}
}

func FuzzParseBaseDigests(f *testing.F) {
	f.Add(encodeBaseDigests("b", [][32]byte{{1}}), "b")
	f.Add([]byte("b\n"), "b")
	f.Fuzz(func(t *testing.T, b []byte, boot string) {
		if d, ok := parseBaseDigests(b, boot); ok && !bytes.Equal(encodeBaseDigests(boot, d), b) {
			t.Fatalf("%x read as %d digests that encode otherwise", b, len(d))
		}
	})
}
