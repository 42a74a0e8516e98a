package fs

import (
	"errors"
	"syscall"

	goerrors "github.com/go-errors/errors"
)

// wrapIO, deferred by each exported function that reads or writes a file,
// wraps an error of the operating system (a failed read, write, copy or
// stat: an errno anywhere in its chain) with go-errors, so it carries the
// stack where it came out of fs. Errors about the input itself (a corrupt
// image, a name too long) stay plain values.
func wrapIO(err *error) {
	var errno syscall.Errno
	var ge *goerrors.Error
	if *err != nil && errors.As(*err, &errno) && !errors.As(*err, &ge) {
		*err = goerrors.Wrap(*err, 1)
	}
}
