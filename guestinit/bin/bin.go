// Package bin embeds the Linux guest's init program, one build for each
// architecture, which `make build` compiles into this folder as init-amd64
// and init-arm64 (they are not committed).
package bin

import (
	"embed"
	"fmt"
	"io"

	"github.com/opsdev/ops/arch"
)

//go:embed *
var files embed.FS

// Name is the file of a's init in this folder.
func Name(a arch.Arch) string { return "init-" + string(a) }

// Init returns the embedded init program for guests of architecture a. It
// reads the program in place: ReadFile would copy its 2.5 MB on every run,
// and that copy alone sets off a garbage collection during `ops run`.
func Init(a arch.Arch) (*io.SectionReader, error) {
	f, err := files.Open(Name(a))
	if err != nil {
		return nil, fmt.Errorf("this ops was built without the Linux guest's init program for %s; build ops with 'make build'", a)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("embedded %s: %w", Name(a), err)
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil, fmt.Errorf("embedded %s cannot be read in place", Name(a))
	}
	return io.NewSectionReader(ra, 0, st.Size()), nil
}
