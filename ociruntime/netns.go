package ociruntime

import (
	"fmt"
	"os"
	"runtime"

	goerrors "github.com/go-errors/errors"
	"golang.org/x/sys/unix"
)

// inNetns runs fn on an OS thread of its own that has entered the
// network namespace at path (fn must not start goroutines that expect
// the namespace). A process fn starts is in that namespace: Go forks on
// the calling thread. The thread goes back to the process's namespace
// afterwards, or, should that fail, ends with fn's goroutine.
func inNetns(path string, fn func() error) error {
	if sameFile(path, "/proc/thread-self/ns/net") {
		return fn() // no need (and, unprivileged, no right) to enter it
	}
	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		restored := false
		defer func() {
			if restored {
				runtime.UnlockOSThread()
			} // else the locked thread ends with this goroutine
		}()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{goerrors.Wrap(err, 0)}
			restored = true
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			done <- result{fmt.Errorf("network namespace %s: %w", path, err)}
			restored = true
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{fmt.Errorf("entering network namespace %s: %w", path, err)}
			restored = true
			return
		}
		ferr := fn()
		restored = unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil
		done <- result{ferr}
	}()
	return (<-done).err
}

// sameFile reports whether a and b are the same file (a namespace, here).
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}
