package cmd

import (
	"strings"
	"testing"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
)

// TestVMForAccel checks the parts of the VM that depend on the
// accelerator: a retry under TCG after KVM failed must get them too.
func TestVMForAccel(t *testing.T) {
	linux := &built{
		spec:   lepton.ImageSpec{Guest: lepton.GuestLinux, Linux: &lepton.LinuxKernel{Image: "vmlinux"}},
		result: &lepton.BuildResult{Path: "app.initramfs", Size: 10 << 20},
	}
	nanos := &built{
		spec:   lepton.ImageSpec{Guest: lepton.GuestNanos, Nanos: lepton.NanosKernel{Kernel: "kernel.img"}},
		result: &lepton.BuildResult{Path: "app.img"},
	}
	tsc := qemu.TSCkHz(readFile("/proc/cpuinfo")) > 0
	for _, tc := range []struct {
		name     string
		b        *built
		accel    qemu.Accel
		pages    qemu.Pages
		tscHint  bool
		memoryMB int
	}{
		{"linux tcg", linux, qemu.TCG, qemu.PagesSmall, tsc, 256},
		{"linux kvm", linux, qemu.KVM, qemu.PagesDefault, false, 256},
		{"nanos tcg", nanos, qemu.TCG, qemu.PagesMemfdRAM, false, 0},
		{"nanos kvm", nanos, qemu.KVM, qemu.PagesDefault, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, err := vmFor(tc.b, &lepton.Config{}, tc.accel, true)
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
