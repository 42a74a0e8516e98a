package lepton

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/testutil"
	"github.com/opsdev/ops/qemu"
)

// TestUEFIGuest: Uefi picks the loader (UefiBoot, else the release's
// bootx64.efi), and says what to do when there is none.
func TestUEFIGuest(t *testing.T) {
	home := Home{Dir: t.TempDir()}
	rel := filepath.Join(home.Dir, "0.1.99")
	for _, f := range []string{"kernel.img", "boot.img"} {
		testutil.WriteFile(t, filepath.Join(rel, f), "x")
	}
	testutil.WriteFile(t, filepath.Join(home.Dir, "latest.txt"), "0.1.99\n")
	own := filepath.Join(t.TempDir(), "my.efi")
	testutil.WriteFile(t, own, "efi")

	_, _, err := ChooseGuest(home, &Config{Guest: "nanos", Uefi: true})
	if err == nil || !strings.Contains(err.Error(), "Nanos release 0.1.99 has no bootx64.efi") {
		t.Errorf("release without bootx64.efi: %v", err)
	}
	g, _, err := ChooseGuest(home, &Config{Guest: "nanos", Uefi: true, UefiBoot: own})
	if err != nil || g.(*nanosGuest).UEFI != own {
		t.Errorf("UefiBoot: %v, %v", g, err)
	}
	if _, _, err := ChooseGuest(home, &Config{Guest: "nanos", Uefi: true, UefiBoot: own + ".none"}); err == nil || !strings.Contains(err.Error(), "UefiBoot: no UEFI loader at") {
		t.Errorf("missing UefiBoot: %v", err)
	}
	testutil.WriteFile(t, filepath.Join(rel, "bootx64.efi"), "efi")
	g, _, err = ChooseGuest(home, &Config{Guest: "nanos", Uefi: true})
	if err != nil || g.(*nanosGuest).UEFI != filepath.Join(rel, "bootx64.efi") {
		t.Errorf("release's bootx64.efi: %v, %v", g, err)
	}
	if g, _, _ := ChooseGuest(home, &Config{Guest: "nanos"}); g.(*nanosGuest).UEFI != "" {
		t.Errorf("a BIOS image got a UEFI loader")
	}
	if _, _, err := ChooseGuest(home, &Config{Guest: "linux", Uefi: true}); err == nil || !strings.Contains(err.Error(), "Linux guest boots from an initramfs") {
		t.Errorf("linux with Uefi: %v", err)
	}
}

// TestNanosKeyNamesUUIDScheme: a Nanos image's key names how its
// filesystems' UUIDs are derived, so an image whose UUIDs came from
// another scheme (an older ops's) is built again, not reused.
func TestNanosKeyNamesUUIDScheme(t *testing.T) {
	g := &nanosGuest{Kernel: fakeRelease(t, t.TempDir())}
	var key bytes.Buffer
	if err := g.key(&key, &Plan{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(key.String(), "uuid "+opsfs.UUIDScheme+"\n") {
		t.Fatalf("the key does not name %s:\n%s", opsfs.UUIDScheme, key.String())
	}
}

func TestUEFIVM(t *testing.T) {
	if _, err := qemu.FindOVMF(qemu.OVMFPaths()); err != nil {
		t.Skipf("SKIP: %v", err)
	}
	g := &nanosGuest{Kernel: nanosKernel{Kernel: "kernel.img"}, UEFI: "bootx64.efi"}
	img := &BuildResult{Path: "app.img"}
	for _, tc := range []struct {
		machine, err string
	}{{"", ""}, {"q35", ""}, {"microvm", "--uefi boots through UEFI firmware on a q35 machine; --machine microvm cannot"}} {
		vm, err := g.VM(Boot{Image: img, Run: RunConfig{Machine: tc.machine}, Accel: qemu.TCG})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("machine %q: %v, want %q", tc.machine, err, tc.err)
			}
			continue
		}
		if err != nil || vm.Machine != qemu.Q35 || vm.Firmware == "" || vm.Kernel != "" {
			t.Errorf("machine %q: %+v, %v; want q35 with OVMF and no -kernel", tc.machine, vm, err)
		}
	}
}
