// Package arch names the machine architectures ops builds images for and
// what differs between them outside the guests: the ELF machine a program
// must be built for, the QEMU that runs it, where Debian keeps its
// libraries, and the names other tools give it.
package arch

import (
	"debug/elf"
	"fmt"
	"runtime"
	"strings"
)

// Arch is a target architecture, named as Go names it.
type Arch string

// The architectures ops builds for.
const (
	AMD64 Arch = "amd64"
	ARM64 Arch = "arm64"
)

// All are the architectures ops builds for.
func All() []Arch { return []Arch{AMD64, ARM64} }

// Host is the architecture ops runs on; AMD64 where it is neither.
func Host() Arch {
	if runtime.GOARCH == string(ARM64) {
		return ARM64
	}
	return AMD64
}

// Parse reads an architecture as users write it: Go's names (amd64,
// arm64) or the kernel's (x86_64, aarch64); "" is the host's.
func Parse(s string) (Arch, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return Host(), nil
	case "amd64", "x86_64", "x86-64", "x64":
		return AMD64, nil
	case "arm64", "aarch64":
		return ARM64, nil
	}
	return "", fmt.Errorf("%q is not an architecture ops builds for; use amd64 (x86_64) or arm64 (aarch64)", s)
}

// ForELF is the architecture of an ELF machine, and false for machines
// ops does not build for.
func ForELF(m elf.Machine) (Arch, bool) {
	for _, a := range All() {
		if a.ELFMachine() == m {
			return a, true
		}
	}
	return "", false
}

// ELFMachine is the e_machine of programs built for a.
func (a Arch) ELFMachine() elf.Machine {
	if a == ARM64 {
		return elf.EM_AARCH64
	}
	return elf.EM_X86_64
}

// Kernel is the name the kernel (uname -m) and Debian's multiarch
// triplets give a: x86_64 or aarch64.
func (a Arch) Kernel() string {
	if a == ARM64 {
		return "aarch64"
	}
	return "x86_64"
}

// Triplet is Debian's multiarch name: its libraries sit in
// /usr/lib/<triplet>, and a cross toolchain's target root in
// /usr/<triplet>.
func (a Arch) Triplet() string { return a.Kernel() + "-linux-gnu" }

// QEMU is the QEMU system emulator for a.
func (a Arch) QEMU() string { return "qemu-system-" + a.Kernel() }

// OrAMD64 is a, or AMD64 when a is unset: the zero value of a field
// that was x86-64 before ops built for arm64.
func (a Arch) OrAMD64() Arch {
	if a == "" {
		return AMD64
	}
	return a
}

// String implements fmt.Stringer.
func (a Arch) String() string { return string(a) }
