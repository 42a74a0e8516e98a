package qemu

import (
	"errors"
	"os"
	"strings"
)

// OVMFPaths are where distributions install OVMF as one image QEMU takes
// with -bios (code and variables together; the variables live only as
// long as the VM, which a unikernel does not miss).
func OVMFPaths() []string {
	return []string{
		"/usr/share/ovmf/OVMF.fd",      // Debian, Ubuntu (package ovmf)
		"/usr/share/qemu/OVMF.fd",      // Debian's link, Arch
		"/usr/share/edk2/ovmf/OVMF.fd", // older Fedora
		"/usr/share/OVMF/OVMF.fd",      // some Ubuntu releases
		"/usr/share/edk2-ovmf/OVMF.fd", // Gentoo
		"/usr/share/edk2/x64/OVMF.fd",  // Arch's edk2-ovmf
	}
}

// AAVMFPaths are where distributions install the arm64 UEFI firmware
// (AAVMF) as one image QEMU takes with -bios.
func AAVMFPaths() []string {
	return []string{
		"/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", // Debian, Ubuntu (package qemu-efi-aarch64)
		"/usr/share/edk2/aarch64/QEMU_EFI.fd",     // Fedora, Arch
		"/usr/share/AAVMF/AAVMF_CODE.fd",          // Debian's AAVMF
	}
}

// FindOVMF returns the first OVMF firmware image found in paths.
func FindOVMF(paths []string) (string, error) {
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("no UEFI firmware found in " + strings.Join(paths, ", ") + "; install it (Debian: apt-get install ovmf, or qemu-efi-aarch64 for arm64) to boot with --uefi")
}
