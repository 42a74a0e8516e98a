package fs

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	goerrors "github.com/go-errors/errors"
)

func TestWrapIO(t *testing.T) {
	ioErr := &fs.PathError{Op: "write", Path: "/x/image", Err: syscall.ENOSPC}
	wrapped := goerrors.Wrap(ioErr, 0)
	for _, tc := range []struct {
		name    string
		err     error
		stacked bool // wrapped with go-errors afterwards
		same    bool // left as it was
	}{
		{"nil", nil, false, true},
		{"bad input", errors.New("tfs: bad magic"), false, true},
		{"bad input wrapping", fmt.Errorf("image: %w", errors.New("truncated")), false, true},
		{"errno", ioErr, true, false},
		{"errno wrapped with context", fmt.Errorf("%s: %w", "/etc/hosts", ioErr), true, false},
		{"go-errors already", wrapped, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err
			wrapIO(&err)
			var ge *goerrors.Error
			if errors.As(err, &ge) != tc.stacked {
				t.Errorf("%v: go-errors %v, want %v", err, !tc.stacked, tc.stacked)
			}
			if (err == tc.err) != tc.same {
				t.Errorf("%v: changed %v, want %v", err, err != tc.err, !tc.same)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("%v no longer is %v", err, tc.err)
			}
		})
	}
}
