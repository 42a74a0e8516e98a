package fs

import (
	"bytes"
	"crypto/sha256"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// writeTFSCached writes tree's filesystem with cache (nil: none) and
// returns its bytes.
func writeTFSCached(t *testing.T, tree *Tree, cache *DigestCache) []byte {
	t.Helper()
	l, err := LayoutTFS(tree, nil, TFSOptions{Label: "test"})
	if err != nil {
		t.Fatal(err)
	}
	l.UseDigests(cache)
	return writeLaidOut(t, l)
}

// later is a build's start far enough after the test's files were
// written for their digests to be remembered.
func later() time.Time { return time.Now().Add(time.Hour) }

// TestDigestCacheImage: a filesystem written with digests from the cache
// is byte for byte the one written by hashing; the cache is consulted
// (a wrong digest in it shows in the UUID); a file changed in place, its
// size and modification time kept, is hashed again; and files changed
// just before the build are not remembered.
func TestDigestCacheImage(t *testing.T) {
	dir := t.TempDir()
	tree := uuidTree(t, dir, nil)
	want := writeTFSCached(t, tree, nil)

	c := NewDigestCache(later())
	if got := writeTFSCached(t, tree, c); !bytes.Equal(got, want) {
		t.Fatal("the first write with a cache differs from one without")
	}
	if !c.Changed() || len(c.known) != 5 { // small, big, leaf, sparse, after
		t.Fatalf("cache after the first write: changed %v, %d files, want the 5 host files", c.Changed(), len(c.known))
	}
	c2, err := LoadDigestCache(c.Bytes(), later())
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(c.known, c2.known, slices.Equal) {
		t.Fatal("the cache read back differs")
	}
	if got := writeTFSCached(t, tree, c2); !bytes.Equal(got, want) {
		t.Fatal("a write from the cache differs from one that hashed")
	}
	if c2.Changed() {
		t.Fatal("a write that knew every file added to the cache")
	}

	// A wrong digest for /big gives another UUID: the cache was used.
	wrong, _ := LoadDigestCache(c.Bytes(), later())
	for k, d := range wrong.known {
		if k.Size == 3*leafSize+11 {
			d[1] = [sha256.Size]byte{}
		}
	}
	if got := writeTFSCached(t, tree, wrong); bytes.Equal(got[:SectorSize], want[:SectorSize]) {
		t.Fatal("a wrong cached digest left the UUID as it was: the cache was not used")
	}

	// /big changed in place, its size and modification time restored:
	// its status-change time differs, so it is hashed.
	big := filepath.Join(dir, "big")
	st, _ := os.Stat(big)
	b, _ := os.ReadFile(big)
	b[leafSize+5] ^= 1
	time.Sleep(10 * time.Millisecond) // past the clock's tick
	if err := os.WriteFile(big, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(big, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	changed := writeTFSCached(t, tree, nil)
	if bytes.Equal(changed[:SectorSize], want[:SectorSize]) {
		t.Fatal("the changed byte left the UUID as it was")
	}
	if got := writeTFSCached(t, tree, c2); !bytes.Equal(got, changed) {
		t.Fatal("with the cache, the changed file's image differs from one that hashed it")
	}

	// Files written just now are not remembered.
	fresh := NewDigestCache(time.Now())
	writeTFSCached(t, uuidTree(t, t.TempDir(), nil), fresh)
	if fresh.Changed() || len(fresh.known) != 0 {
		t.Fatalf("files changed within %v of the build were remembered", racyWindow)
	}
}

// TestLoadDigestCacheDamaged: a cache file that is torn, damaged or of
// another scheme is an empty cache, with the reason.
func TestLoadDigestCacheDamaged(t *testing.T) {
	c := NewDigestCache(later())
	c.add(fileKey{Dev: 1, Ino: 2, Size: leafSize + 1, Mtime: 3, Ctime: 4, valid: true}, make([][sha256.Size]byte, 2))
	good := c.Bytes()
	flipped := bytes.Clone(good)
	flipped[len(digestHeader())+3] ^= 1
	other := bytes.Replace(bytes.Clone(good[:len(good)-sha256.Size]), []byte(UUIDScheme), []byte("tfs-uuid-9"), 1)
	otherSum := sha256.Sum256(other)
	for name, b := range map[string][]byte{
		"empty":          nil,
		"torn":           good[:len(good)/2],
		"a flipped bit":  flipped,
		"another scheme": append(other, otherSum[:]...),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := LoadDigestCache(b, later())
			if err == nil || len(got.known) != 0 {
				t.Fatalf("read %d files, err %v", len(got.known), err)
			}
		})
	}
	if got, err := LoadDigestCache(good, later()); err != nil || len(got.known) != 1 {
		t.Fatalf("the good file: %d files, %v", len(got.known), err)
	}
}

func FuzzLoadDigestCache(f *testing.F) {
	c := NewDigestCache(later())
	c.add(fileKey{Dev: 1, Ino: 2, Size: 3 * leafSize, Mtime: 3, Ctime: 4, valid: true}, make([][sha256.Size]byte, 3))
	c.add(fileKey{Dev: 1, Ino: 3, Size: 10, Mtime: 3, Ctime: 4, valid: true}, make([][sha256.Size]byte, 1))
	f.Add(c.Bytes())
	f.Add(NewDigestCache(later()).Bytes())
	f.Add([]byte("ops-digests 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := LoadDigestCache(b, later())
		if err != nil {
			return
		}
		back, err := LoadDigestCache(got.Bytes(), later())
		if err != nil || !maps.EqualFunc(got.known, back.known, slices.Equal) {
			t.Fatalf("a cache read back differs: %v", err)
		}
	})
}

// TestDigestCacheOverlay: two overlay mounts of one layer (two containers
// of one image) give their files other devices; the second finds the
// digests the first hashed. Needs the right to mount (root).
func TestDigestCacheOverlay(t *testing.T) {
	dir := t.TempDir()
	lower := filepath.Join(dir, "layer")
	if err := os.Mkdir(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	hostFile(t, lower, "prog", pattern(3*leafSize+7, 9))
	hostFile(t, lower, "conf", pattern(100, 8))
	mount := func(name string) string {
		t.Helper()
		up, work, merged := filepath.Join(dir, name+"-up"), filepath.Join(dir, name+"-work"), filepath.Join(dir, name)
		for _, d := range []string{up, work, merged} {
			os.Mkdir(d, 0o755)
		}
		if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+up+",workdir="+work); err != nil {
			t.Skipf("SKIP: cannot mount an overlay here: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
		return merged
	}
	a, b := mount("a"), mount("b")
	var sa, sb unix.Stat_t
	unix.Stat(filepath.Join(a, "prog"), &sa)
	unix.Stat(filepath.Join(b, "prog"), &sb)
	if sa.Dev == sb.Dev {
		t.Skip("SKIP: the two overlays share a device here")
	}
	tree := func(root string) *Tree {
		return treeOf(t, []Entry{
			{Path: "/prog", Kind: KindFile, Source: filepath.Join(root, "prog"), Size: 3*leafSize + 7},
			{Path: "/conf", Kind: KindFile, Source: filepath.Join(root, "conf"), Size: 100},
		})
	}
	want := writeTFSCached(t, tree(a), nil)
	c := NewDigestCache(later())
	if got := writeTFSCached(t, tree(a), c); !bytes.Equal(got, want) || len(c.known) != 2 {
		t.Fatalf("first container: same bytes %v, %d files remembered", bytes.Equal(got, want), len(c.known))
	}
	c2, _ := LoadDigestCache(c.Bytes(), later())
	if got := writeTFSCached(t, tree(b), c2); !bytes.Equal(got, want) {
		t.Fatal("the second container's image differs")
	}
	if c2.Changed() {
		t.Fatal("the second container's files were hashed again")
	}
}
