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

// FindOVMF returns the first OVMF firmware image found in paths.
func FindOVMF(paths []string) (string, error) {
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("no UEFI firmware (OVMF) found in " + strings.Join(paths, ", ") + "; install it (Debian: apt-get install ovmf) to boot with --uefi")
}
