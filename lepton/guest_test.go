package lepton

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/testutil"
	"github.com/opsdev/ops/linuxkernel"
	"github.com/opsdev/ops/qemu"
	"github.com/opsdev/ops/volume"
)

// TestGuestVMAccel checks the parts of each guest's VM that depend on the
// accelerator: a retry under TCG after KVM failed must get them too.
func TestGuestVMAccel(t *testing.T) {
	linux := &linuxGuest{Kernel: &linuxkernel.Kernel{Image: "vmlinux"}}
	nanos := &nanosGuest{Kernel: nanosKernel{Kernel: "kernel.img"}}
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	tsc := qemu.TSCkHz(string(cpuinfo)) > 0
	for _, tc := range []struct {
		name     string
		g        Guest
		size     int64
		accel    qemu.Accel
		pages    qemu.Pages
		tscHint  bool
		memoryMB int
	}{
		{"linux tcg", linux, 10 << 20, qemu.TCG, qemu.PagesSmall, tsc, 256},
		{"linux kvm", linux, 10 << 20, qemu.KVM, qemu.PagesDefault, false, 256},
		{"linux big initramfs", linux, 100 << 20, qemu.TCG, qemu.PagesSmall, tsc, 448},
		{"nanos tcg", nanos, 0, qemu.TCG, qemu.PagesMemfdRAM, false, 0},
		{"nanos kvm", nanos, 0, qemu.KVM, qemu.PagesDefault, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, err := tc.g.VM(Boot{Image: &BuildResult{Path: "app.img", Size: tc.size}, Accel: tc.accel})
			if err != nil {
				t.Fatal(err)
			}
			if vm.Accel != tc.accel || vm.Pages != tc.pages || vm.MemoryMB != tc.memoryMB {
				t.Errorf("accel %s, pages %d, memory %d MB; want %s, %d, %d MB", vm.Accel, vm.Pages, vm.MemoryMB, tc.accel, tc.pages, tc.memoryMB)
			}
			if got := strings.Contains(vm.Append, "tsc_early_khz="); got != tc.tscHint {
				t.Errorf("tsc_early_khz in %q: %v, want %v", vm.Append, got, tc.tscHint)
			}
		})
	}
}

// TestGuestVM checks what each guest puts in its VM for a run config.
func TestGuestVM(t *testing.T) {
	linux := &linuxGuest{Kernel: &linuxkernel.Kernel{Image: "vmlinux"}}
	nanos := &nanosGuest{Kernel: nanosKernel{Kernel: "kernel.img"}}
	img := &BuildResult{Path: "app.img", Size: 1 << 20}
	for _, tc := range []struct {
		name     string
		g        Guest
		rc       RunConfig
		writable bool
		check    func(t *testing.T, vm qemu.VM)
		wantErr  string
	}{
		{"nanos overlay by default", nanos, RunConfig{}, false, func(t *testing.T, vm qemu.VM) {
			// ops's own overlay takes the writes, not QEMU's snapshot=on,
			// so the exit record can be read back from it.
			if len(vm.Drives) != 1 || vm.Drives[0].Snapshot || vm.Drives[0].Overlay == "" || vm.Kernel != "kernel.img" || !vm.RNG {
				t.Errorf("drives %+v kernel %q rng %v", vm.Drives, vm.Kernel, vm.RNG)
			}
		}, ""},
		{"nanos writable with -s", nanos, RunConfig{}, true, func(t *testing.T, vm qemu.VM) {
			if vm.Drives[0].Snapshot {
				t.Error("snapshot on a writable boot")
			}
		}, ""},
		{"nanos q35 boots the disk", nanos, RunConfig{Machine: qemu.Q35}, false, func(t *testing.T, vm qemu.VM) {
			if vm.Kernel != "" {
				t.Errorf("kernel %q on q35", vm.Kernel)
			}
		}, ""},
		{"linux initrd", linux, RunConfig{Memory: "1G", Debug: true}, false, func(t *testing.T, vm qemu.VM) {
			if vm.Initrd != "app.img" || vm.Kernel != "vmlinux" || vm.MemoryMB != 1024 || !strings.Contains(vm.Append, "ops.debug=1") {
				t.Errorf("initrd %q kernel %q memory %d append %q", vm.Initrd, vm.Kernel, vm.MemoryMB, vm.Append)
			}
		}, ""},
		{"bare memory number is MiB", nanos, RunConfig{Memory: "512"}, false, func(t *testing.T, vm qemu.VM) {
			if vm.MemoryMB != 512 {
				t.Errorf("memory %d", vm.MemoryMB)
			}
		}, ""},
		{"ports", nanos, RunConfig{Ports: []string{"8080", "9000:80"}, UDPPorts: []string{"53"}}, false, func(t *testing.T, vm qemu.VM) {
			if vm.Net.Mode != "user" || len(vm.Net.Forwards) != 3 {
				t.Errorf("net %+v", vm.Net)
			}
		}, ""},
		{"tap", linux, RunConfig{TapName: "tap9"}, false, func(t *testing.T, vm qemu.VM) {
			if vm.Net.Mode != "tap" || vm.Net.Tap != "tap9" {
				t.Errorf("net %+v", vm.Net)
			}
		}, ""},
		{"bridged without a tap", nanos, RunConfig{Bridged: true}, false, nil, "--tapname"},
		{"linux on q35", linux, RunConfig{Machine: qemu.Q35}, false, nil, "microvm only"},
		{"bad memory", nanos, RunConfig{Memory: "lots"}, false, nil, "memory"},
		{"bad port", nanos, RunConfig{Ports: []string{"x"}}, false, nil, "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, err := tc.g.VM(Boot{Image: img, Run: tc.rc, Accel: qemu.TCG, Writable: tc.writable})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, vm)
		})
	}
}

func TestGuestImageFiles(t *testing.T) {
	if got := (&nanosGuest{}).imageSuffix(); got != "" {
		t.Errorf("nanos: %q", got)
	}
	if got := (&linuxGuest{}).imageSuffix(); got != ".initramfs" {
		t.Errorf("linux: %q", got)
	}
	for file, want := range map[string]string{"/x/app.initramfs": "app", "/x/app": "app", "app.img": "app.img"} {
		if got := ImageName(file); got != want {
			t.Errorf("ImageName(%q) = %q, want %q", file, got, want)
		}
	}
}

// TestBuiltImage: an image is found by name whatever its guest, and its
// guest is told from its first bytes.
func TestBuiltImage(t *testing.T) {
	home := Home{Dir: t.TempDir()}
	disk := make([]byte, 1024)
	copy(disk, "stage1")
	disk[510], disk[511] = 0x55, 0xaa
	armDisk := opsfs.BootStub().Data
	armInit := append([]byte("070701...\x7fELF"), make([]byte, 20)...)
	armInit[9+18] = 183 // EM_AARCH64
	testutil.WriteFile(t, filepath.Join(home.imagesDir(), "web"), string(disk))
	testutil.WriteFile(t, filepath.Join(home.imagesDir(), "web-arm"), string(armDisk))
	testutil.WriteFile(t, filepath.Join(home.imagesDir(), "api.initramfs"), "070701...")
	testutil.WriteFile(t, filepath.Join(home.imagesDir(), "api-arm.initramfs"), string(armInit))
	testutil.WriteFile(t, filepath.Join(home.imagesDir(), "junk"), "junk")
	for _, tc := range []struct {
		arg, want, guest, err string
		arch                  arch.Arch
	}{
		{"web", "", "nanos", "", arch.AMD64},
		{"web-arm", "", "nanos", "", arch.ARM64},
		{"api", "", "linux", "", arch.AMD64},
		{"api-arm", "", "linux", "", arch.ARM64},
		{"api", "nanos", "", "an image for the linux guest, not nanos", ""},
		{"junk", "", "", "not an image", ""},
		{"gone", "", "", "no image gone", ""},
	} {
		p, g, a, err := home.BuiltImage(tc.arg, tc.want)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil || g.Name() != tc.guest || !filepath.IsAbs(p) || a != tc.arch {
			t.Errorf("%s: %s %v %s %v", tc.arg, p, g, a, err)
		}
	}
}

// TestLinuxImageByName: the image commands find a Linux guest's image by
// its plain name as the others do (NAME.initramfs), say in one line what
// the Nanos readers cannot read, and delete it with its key.
func TestLinuxImageByName(t *testing.T) {
	home := Home{Dir: t.TempDir()}
	img := filepath.Join(home.imagesDir(), "api.initramfs")
	testutil.WriteFile(t, img, "070701"+strings.Repeat("0", 200))
	testutil.WriteFile(t, keyPath(img), "key")
	if p, err := home.FindImage("api"); err != nil || p != img {
		t.Fatalf("FindImage(api) = %s, %v; want %s", p, err, img)
	}
	err := home.ReadImage("api", false, func(*opsfs.Reader) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "is a Linux-guest image") || strings.Contains(err.Error(), "\n") {
		t.Errorf("ReadImage of an initramfs: %v", err)
	}
	if err := home.DeleteImage("api"); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(home.imagesDir(), "*api*")); len(left) > 0 {
		t.Errorf("left after delete: %v", left)
	}
}

func TestChooseGuestExplicit(t *testing.T) {
	home := Home{Dir: t.TempDir()}
	for _, tc := range []struct {
		name, guest, wantErr string
	}{
		{"nanos without a release", "nanos", "ops update"},
		{"unknown guest", "bsd", `"bsd" is not a guest`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ChooseGuest(home, &Config{Guest: tc.guest})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	// Kernel and Boot in config.json make a Nanos guest without a release.
	g, note, err := ChooseGuest(home, &Config{Kernel: "k.img", Boot: "b.img"})
	if err != nil || note != "" || g.Name() != "nanos" {
		t.Fatalf("guest %v note %q err %v", g, note, err)
	}
}

func TestQEMUUser(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		euid int
		env  map[string]string
		want string
	}{
		{1000, nil, ""},
		{0, nil, "65534:65534"},
		{0, map[string]string{"SUDO_UID": "1000", "SUDO_GID": "1001"}, "1000:1001"},
		{0, map[string]string{"SUDO_UID": "0", "SUDO_GID": "0"}, "65534:65534"}, // sudo from root
		{0, map[string]string{"SUDO_UID": "x", "SUDO_GID": "1"}, "65534:65534"},
	}
	for _, tc := range cases {
		if got := qemuUser(tc.euid, env(tc.env)); got != tc.want {
			t.Errorf("euid %d %v: %q, want %q", tc.euid, tc.env, got, tc.want)
		}
	}
}

// TestVolumeGuest: each volume format names the guest that mounts it.
func TestVolumeGuest(t *testing.T) {
	for f, want := range map[volume.Format]string{volume.TFS{}: "nanos", volume.Ext4{}: "linux"} {
		if got := VolumeGuest(f); got != want {
			t.Errorf("VolumeGuest(%s) = %q, want %q", f.Name(), got, want)
		}
	}
}
