package fs

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Kind says what a tree entry is.
type Kind int

// Entry kinds.
const (
	KindFile Kind = iota
	KindDir
	KindSymlink
)

// Entry is one guest path in an image tree. Both image writers (TFS for
// Nanos, cpio for the Linux guest) take the same entries.
type Entry struct {
	Path   string // absolute, clean guest path
	Kind   Kind
	Source string // host file holding the contents (KindFile, when Data is nil)
	Data   []byte // literal contents (KindFile)
	Size   int64  // content length (KindFile)
	Target string // link target (KindSymlink)
	Mode   fs.FileMode
	// Info is Source's status when it was planned, if known: the image
	// key, which records every source's stamp, then needs no second stat.
	Info fs.FileInfo
}

// Tree is a set of entries keyed by guest path. Adding a file creates its
// parent directories; adding the same path again replaces the entry, so
// later layers (package sysroot, then user files) win.
type Tree struct {
	entries map[string]*Entry
	sorted  []*Entry // Entries' order, until the next Add
}

// NewTree returns a tree holding only the root directory.
func NewTree() *Tree {
	return &Tree{entries: map[string]*Entry{"/": {Path: "/", Kind: KindDir, Mode: 0o755}}}
}

// CleanPath makes p an absolute, clean guest path, rejecting empty names.
func CleanPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty guest path")
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("guest path %q contains a NUL byte", p)
	}
	if p[0] != '/' {
		p = "/" + p
	}
	return path.Clean(p), nil // no copy when p is clean already
}

// Add inserts e, creating parent directories. A directory never replaces
// a file or link, and a file cannot sit below a file.
func (t *Tree) Add(e Entry) error {
	p, err := CleanPath(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	if e.Mode == 0 {
		switch e.Kind {
		case KindDir:
			e.Mode = 0o755
		case KindSymlink:
			e.Mode = 0o777
		default:
			e.Mode = 0o644
		}
	}
	if e.Kind == KindFile && e.Data != nil {
		e.Size = int64(len(e.Data))
	}
	for dir := path.Dir(p); ; dir = path.Dir(dir) {
		old, ok := t.entries[dir]
		if ok && old.Kind != KindDir {
			return fmt.Errorf("cannot add %s: %s is not a directory", p, dir)
		}
		if ok {
			break // a folder's own parents are all there already
		}
		t.entries[dir] = &Entry{Path: dir, Kind: KindDir, Mode: 0o755}
		t.sorted = nil
		if dir == "/" {
			break
		}
	}
	if old, ok := t.entries[p]; ok && old.Kind == KindDir {
		if e.Kind == KindDir {
			return nil
		}
		for q := range t.entries {
			if strings.HasPrefix(q, p+"/") {
				return fmt.Errorf("cannot replace directory %s, which is not empty, with a file", p)
			}
		}
	}
	t.entries[p] = &e
	t.sorted = nil
	return nil
}

// Get returns the entry at p.
func (t *Tree) Get(p string) (*Entry, bool) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, false
	}
	e, ok := t.entries[p]
	return e, ok
}

// Entries returns every entry sorted by path, so parents precede children
// and the order never depends on how the tree was filled.
// A plan's closure, key and layout each ask, so the order is kept until
// the tree changes.
func (t *Tree) Entries() []*Entry {
	if t.sorted == nil {
		t.sorted = make([]*Entry, 0, len(t.entries))
		for _, e := range t.entries {
			t.sorted = append(t.sorted, e)
		}
		slices.SortFunc(t.sorted, func(a, b *Entry) int { return strings.Compare(a.Path, b.Path) })
	}
	return slices.Clone(t.sorted)
}

// len is the number of entries, the root included.
func (t *Tree) len() int { return len(t.entries) }
