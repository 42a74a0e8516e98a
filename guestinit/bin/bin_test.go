package bin

import (
	"debug/elf"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
)

// TestInit: each architecture's embedded init is a static ELF for that
// architecture; an ops built without it says how to build one.
func TestInit(t *testing.T) {
	for _, a := range arch.All() {
		t.Run(string(a), func(t *testing.T) {
			r, err := Init(a)
			if err != nil {
				if !strings.Contains(err.Error(), "make build") || !strings.Contains(err.Error(), string(a)) {
					t.Fatalf("the error says neither the architecture nor how to build it: %v", err)
				}
				t.Skipf("SKIP: %v", err)
			}
			f, err := elf.NewFile(r)
			if err != nil {
				t.Fatalf("%s: %v", Name(a), err)
			}
			if f.Machine != a.ELFMachine() {
				t.Errorf("%s is built for %v", Name(a), f.Machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s is not static: it names an interpreter", Name(a))
				}
			}
		})
	}
}
