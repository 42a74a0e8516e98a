package lepton

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
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
	ents, err := os.ReadDir(host)
	d.err = err
	d.ents = make([]scanned, len(ents))
	for i, de := range ents {
		e := &d.ents[i]
		e.host, e.d = filepath.Join(host, de.Name()), de
		switch t := de.Type(); {
		case t.IsDir():
			if e.info, e.err = de.Info(); e.err == nil {
				e.dir = &scannedDir{}
				s.sub(e.host, e.dir)
			}
		case t&fs.ModeSymlink != 0:
			e.target, e.err = os.Readlink(e.host)
		case t.IsRegular():
			e.info, e.err = os.Stat(e.host)
		}
	}
}

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
