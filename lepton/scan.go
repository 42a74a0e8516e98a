package lepton

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A host folder is read ahead of the plan, on GOMAXPROCS goroutines: every
// folder's listing and every entry's status (a tree of 1,400 files spends
// most of its plan in these system calls). The plan then takes the
// entries in filepath.WalkDir's order and reports the first error in that
// order, as a walk would.

// scanned is one entry of a folder: its status (folders: Lstat; regular
// files: Stat), link target (links), and a folder's own contents.
type scanned struct {
	host   string
	d      fs.DirEntry
	info   fs.FileInfo
	target string
	err    error // getting info or target
	dir    *scannedDir
}

// scannedDir is a folder's contents in name order, or why it could not be
// read (with what was read before).
type scannedDir struct {
	ents []scanned
	err  error
}

// scanTree reads the folder at root and everything below it.
func scanTree(root string) *scannedDir {
	s := &scanner{slots: make(chan struct{}, runtime.GOMAXPROCS(0)-1)}
	d := &scannedDir{}
	s.dir(root, d)
	s.wg.Wait()
	return d
}

type scanner struct {
	slots chan struct{} // goroutines beside the caller's
	wg    sync.WaitGroup
}

func (s *scanner) dir(host string, d *scannedDir) {
	f, err := os.Open(host)
	if err != nil {
		d.err = err
		return
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	d.err = err
	d.ents = make([]scanned, len(ents))
	fd := int(f.Fd()) // open until the deferred Close
	for i, de := range ents {
		e := &d.ents[i]
		e.host, e.d = filepath.Join(host, de.Name()), de
		switch t := de.Type(); {
		case t.IsDir():
			if e.info, e.err = statAt(fd, de.Name(), e.host, true); e.err == nil {
				e.dir = &scannedDir{}
				s.sub(e.host, e.dir)
			}
		case t&fs.ModeSymlink != 0:
			e.target, e.err = os.Readlink(e.host)
		case t.IsRegular():
			e.info, e.err = statAt(fd, de.Name(), e.host, false)
		}
	}
}

// statAt is os.Lstat (noFollow) or os.Stat of the entry name in the
// folder open as dirfd, looked up from the folder rather than from the
// root (for a tree of 1,400 files, a tenth of the plan's system time was
// walking each file's whole path again).
func statAt(dirfd int, name, host string, noFollow bool) (fs.FileInfo, error) {
	flags, op := 0, "stat"
	if noFollow {
		flags, op = unix.AT_SYMLINK_NOFOLLOW, "lstat"
	}
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &st, flags)
		if err == nil {
			return newStatInfo(name, &st), nil
		}
		if err != unix.EINTR {
			return nil, &os.PathError{Op: op, Path: host, Err: err}
		}
	}
}

// statInfo is an fs.FileInfo made from a stat, as os makes its own; Sys is
// the *syscall.Stat_t os's gives.
type statInfo struct {
	name string
	mode fs.FileMode
	st   syscall.Stat_t
}

func newStatInfo(name string, st *unix.Stat_t) *statInfo {
	i := &statInfo{name: name, st: syscall.Stat_t{
		Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid, Rdev: st.Rdev,
		Size: st.Size, Blksize: st.Blksize, Blocks: st.Blocks,
		Atim: syscall.Timespec{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec},
		Mtim: syscall.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
		Ctim: syscall.Timespec{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec},
	}}
	i.mode = fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		i.mode |= fs.ModeDevice
	case unix.S_IFCHR:
		i.mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		i.mode |= fs.ModeDir
	case unix.S_IFIFO:
		i.mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		i.mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		i.mode |= fs.ModeSocket
	}
	if st.Mode&unix.S_ISGID != 0 {
		i.mode |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISUID != 0 {
		i.mode |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		i.mode |= fs.ModeSticky
	}
	return i
}

func (i *statInfo) Name() string       { return i.name }
func (i *statInfo) Size() int64        { return i.st.Size }
func (i *statInfo) Mode() fs.FileMode  { return i.mode }
func (i *statInfo) ModTime() time.Time { return time.Unix(i.st.Mtim.Sec, i.st.Mtim.Nsec) }
func (i *statInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *statInfo) Sys() any           { return &i.st }

// sub reads a subfolder on a goroutine of its own while one is free, else
// here.
func (s *scanner) sub(host string, d *scannedDir) {
	select {
	case s.slots <- struct{}{}:
		s.wg.Add(1)
		go func() {
			defer func() { <-s.slots; s.wg.Done() }()
			s.dir(host, d)
		}()
	default:
		s.dir(host, d)
	}
}
