package arch

import (
	"debug/elf"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Arch
		err  bool
	}{
		{"", Host(), false},
		{"amd64", AMD64, false},
		{"x86_64", AMD64, false},
		{"X86-64", AMD64, false},
		{"arm64", ARM64, false},
		{"aarch64", ARM64, false},
		{" ARM64 ", ARM64, false},
		{"riscv64", "", true},
		{"arm", "", true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		a             Arch
		m             elf.Machine
		qemu, triplet string
	}{
		{AMD64, elf.EM_X86_64, "qemu-system-x86_64", "x86_64-linux-gnu"},
		{ARM64, elf.EM_AARCH64, "qemu-system-aarch64", "aarch64-linux-gnu"},
	} {
		if tc.a.ELFMachine() != tc.m || tc.a.QEMU() != tc.qemu || tc.a.Triplet() != tc.triplet {
			t.Errorf("%s: %v %s %s", tc.a, tc.a.ELFMachine(), tc.a.QEMU(), tc.a.Triplet())
		}
		if a, ok := ForELF(tc.m); !ok || a != tc.a {
			t.Errorf("ForELF(%v) = %q, %v", tc.m, a, ok)
		}
	}
	if _, ok := ForELF(elf.EM_386); ok {
		t.Error("ForELF(EM_386) is an architecture ops builds for")
	}
}
