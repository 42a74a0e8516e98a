// Package bin embeds the Linux guest's init program, which `make build`
// compiles into this folder (it is not committed).
package bin

import (
	"embed"
	"errors"
)

//go:embed *
var files embed.FS

// Init returns the embedded init program.
func Init() ([]byte, error) {
	b, err := files.ReadFile("init")
	if err != nil {
		return nil, errors.New("this ops was built without the Linux guest's init program; build ops with 'make build'")
	}
	return b, nil
}
