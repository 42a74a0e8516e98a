// Package fileutil writes files so that readers never see them
// half-written, and, but for WriteUnsynced, so that what a rename shows
// has reached the disk.
package fileutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteAtomic writes a file through a temporary file in the same folder
// and a rename.
func WriteAtomic(name string, data []byte, mode os.FileMode) error {
	return WriteAtomicWith(name, mode, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteAtomicWith is WriteAtomic with the contents written by write into
// the temporary file: name appears, with mode, only once write has
// succeeded and the contents are on the disk (the file is synced, then
// renamed, then its folder synced), so neither a crash nor a power cut
// leaves name half-written; on failure the temporary file is removed.
func WriteAtomicWith(name string, mode os.FileMode, write func(f *os.File) error) error {
	return writeAtomic(name, mode, write, true)
}

// WriteUnsynced is WriteAtomic without waiting for the disk: readers
// never see name half-written and a kill -9 leaves it whole or as it
// was, but after a power cut it may be empty or damaged. It is for files
// whose readers can tell (a checksum, the boot they were written in).
func WriteUnsynced(name string, mode os.FileMode, write func(f *os.File) error) error {
	return writeAtomic(name, mode, write, false)
}

func writeAtomic(name string, mode os.FileMode, write func(f *os.File) error, sync bool) error {
	dir := filepath.Dir(name)
	f, err := CreateTemp(dir, filepath.Base(name))
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = write(f)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir flushes a folder's entries (names made, renamed or removed in
// it) to the disk.
func SyncDir(dir string) error { return syncPath(dir, os.O_RDONLY) }

// SyncFile flushes a file's contents to the disk.
func SyncFile(name string) error { return syncPath(name, os.O_RDWR) }

func syncPath(name string, flag int) error {
	f, err := os.OpenFile(name, flag, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncTree flushes everything written under dir to the disk: the whole
// filesystem holding it, in one call (a tree of thousands of files
// would take one fsync each).
func syncTree(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

// CopyFile copies src's contents to a new file dest with mode.
func CopyFile(src, dest string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ReplaceDir moves a complete folder src into place at dest, durably:
// src's contents reach the disk first, and dest's folder is synced
// after. An older dest trades places with src in one step, so dest is
// never half there nor missing, even after a kill -9; the older one ends
// up at src, inside tmp (a folder on the same filesystem, removed by the
// caller). Where the filesystem cannot exchange names, the older dest is
// first moved into tmp and put back if the move fails.
func ReplaceDir(src, dest, tmp string) error {
	if err := syncTree(src); err != nil {
		return err
	}
	parent := filepath.Dir(dest)
	if _, err := os.Stat(dest); err == nil {
		err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dest, unix.RENAME_EXCHANGE)
		if err == nil {
			return SyncDir(parent)
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
			return &os.LinkError{Op: "exchange", Old: src, New: dest, Err: err}
		}
		old := filepath.Join(tmp, "old")
		if err := os.Rename(dest, old); err != nil {
			return err
		}
		if err := os.Rename(src, dest); err != nil {
			os.Rename(old, dest)
			return err
		}
		return SyncDir(parent)
	}
	if err := os.Rename(src, dest); err != nil {
		return err
	}
	return SyncDir(parent)
}

// RenameNew moves src to dest only if nothing is at dest, in one step:
// of two callers that race for one name, exactly one wins and the other
// gets an error matching os.ErrExist. dest's folder is synced after.
func RenameNew(src, dest string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dest, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// No RENAME_NOREPLACE here: a hard link fails on an existing
		// name too (files only; a folder is renamed after a check).
		if st, serr := os.Stat(src); serr == nil && st.Mode().IsRegular() {
			if err = os.Link(src, dest); err == nil {
				err = os.Remove(src)
			}
		} else if _, serr := os.Lstat(dest); serr == nil {
			err = unix.EEXIST
		} else {
			err = unix.Rename(src, dest)
		}
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return &os.LinkError{Op: "rename", Old: src, New: dest, Err: os.ErrExist}
		}
		return &os.LinkError{Op: "rename", Old: src, New: dest, Err: err}
	}
	return SyncDir(filepath.Dir(dest))
}
