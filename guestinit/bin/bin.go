// Package bin embeds the Linux guest's init program, which `make build`
// compiles into this folder (it is not committed).
package bin

import (
	"embed"
	"errors"
	"io"
)

//go:embed *
var files embed.FS

// Init returns the embedded init program. It reads the program in place:
// ReadFile would copy its 2.5 MB on every run, and that copy alone sets
// off a garbage collection during `ops run`.
func Init() (*io.SectionReader, error) {
	f, err := files.Open("init")
	if err != nil {
		return nil, errors.New("this ops was built without the Linux guest's init program; build ops with 'make build'")
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil, errors.New("embedded init cannot be read in place")
	}
	return io.NewSectionReader(ra, 0, st.Size()), nil
}
