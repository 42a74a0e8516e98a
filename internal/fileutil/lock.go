package fileutil

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ErrLocked is TryLock's error when another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock takes an exclusive lock on the file at path (made when missing),
// waiting for another holder to release it. The lock ends with unlock,
// or with the process: a holder killed with -9 leaves nothing to clear.
func Lock(path string) (unlock func(), err error) {
	return lockFile(path, os.O_RDWR|os.O_CREATE, unix.LOCK_EX)
}

// TryLock is Lock that does not wait: ErrLocked when another process
// holds the lock.
func TryLock(path string) (unlock func(), err error) {
	return lockFile(path, os.O_RDWR|os.O_CREATE, unix.LOCK_EX|unix.LOCK_NB)
}

// TryLockExisting is TryLock on a file that must be there already (a
// file whose users share a lock on it, see ShareLock).
func TryLockExisting(path string) (unlock func(), err error) {
	return lockFile(path, os.O_RDONLY, unix.LOCK_EX|unix.LOCK_NB)
}

// ShareLock takes a shared lock on an existing file without waiting:
// many holders share it, and TryLockExisting fails while any does.
func ShareLock(path string) (unlock func(), err error) {
	return lockFile(path, os.O_RDONLY, unix.LOCK_SH|unix.LOCK_NB)
}

func lockFile(path string, flag, how int) (func(), error) {
	for {
		f, err := os.OpenFile(path, flag, 0o644)
		if err != nil {
			return nil, err
		}
		for {
			err = unix.Flock(int(f.Fd()), how)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, ErrLocked
			}
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		// The holder before us may have removed the file (RemoveLocked):
		// a lock on a file no longer at path locks nothing.
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return func() { f.Close() }, nil
		}
		f.Close()
		if flag&os.O_CREATE == 0 && err2 != nil {
			return nil, err2
		}
	}
}

// RemoveLocked removes a lock file whose lock the caller holds (Lock), so
// nothing of a removed thing stays behind; a process that was waiting for
// the lock finds the file gone and takes a new one.
func RemoveLocked(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
