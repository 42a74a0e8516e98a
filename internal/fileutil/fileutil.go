// Package fileutil writes files so that readers never see them
// half-written.
package fileutil

import (
	"io"
	"os"
	"path/filepath"
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
// succeeded; on failure the temporary file is removed.
func WriteAtomicWith(name string, mode os.FileMode, write func(f *os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = write(f)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
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

// ReplaceDir moves a complete folder src into place at dest. An older dest
// is first moved into tmp (a folder on the same filesystem, removed by the
// caller) and put back if the move fails, so dest is never half there.
func ReplaceDir(src, dest, tmp string) error {
	old := ""
	if _, err := os.Stat(dest); err == nil {
		old = filepath.Join(tmp, "old")
		if err := os.Rename(dest, old); err != nil {
			return err
		}
	}
	if err := os.Rename(src, dest); err != nil {
		if old != "" {
			os.Rename(old, dest)
		}
		return err
	}
	return nil
}
