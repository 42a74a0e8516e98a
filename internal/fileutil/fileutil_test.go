package fileutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opsdev/ops/internal/proc"
)

func TestTempWriter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pid   int
		start uint64
		ok    bool
	}{
		{".img.tmp-12-345-0a1b2c3d", 12, 345, true},
		{".a.b.tmp-c.tmp-7-8-ff", 7, 8, true},
		{".get.tmp-1-2-00", 1, 2, true},
		{"img.tmp-12-345-0a", 0, 0, false},    // not hidden
		{".img.tmp-123456", 0, 0, false},      // os.CreateTemp's
		{".img.tmp-0-345-0a", 0, 0, false},    // no such PID
		{".img.tmp-x-345-0a", 0, 0, false},    // not a number
		{".img.tmp-12-345-zz", 0, 0, false},   // not hex
		{".img.tmp-12-345-0a-1", 0, 0, false}, // one part too many
		{".img.key", 0, 0, false},
	} {
		pid, start, ok := tempWriter(tc.name)
		if pid != tc.pid || start != tc.start || ok != tc.ok {
			t.Errorf("%s: %d %d %v, want %d %d %v", tc.name, pid, start, ok, tc.pid, tc.start, tc.ok)
		}
	}
}

// deadWriter is a writer's part of a temporary name whose process has
// ended: a child that ran and was reaped.
func deadWriter(t *testing.T) string {
	c := exec.Command("sleep", "10")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	start, err := proc.Start(c.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	c.Process.Kill()
	c.Wait()
	return strconv.Itoa(c.Process.Pid) + "-" + strconv.FormatUint(start, 10)
}

func TestClearStale(t *testing.T) {
	dir := t.TempDir()
	live, err := CreateTemp(dir, "live")
	if err != nil {
		t.Fatal(err)
	}
	live.Close()
	liveDir, err := MkdirTemp(dir, "get")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := proc.Start(os.Getpid())
	dead := deadWriter(t)
	old := time.Now().Add(-2 * time.Hour)
	for _, tc := range []struct {
		name   string
		dir    bool
		mtime  time.Time
		remove bool
	}{
		{".img.tmp-" + dead + "-0a", false, time.Time{}, true},
		{".get.tmp-" + dead + "-0b", true, time.Time{}, true},
		{".img.tmp-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(self+1, 10) + "-0c", false, time.Time{}, true}, // PID reused
		{".img.tmp-123456", false, old, true},                                                                              // an older ops's, left for hours
		{".release-99", true, old, true},                                                                                   // an older ops's folder
		{".img2.tmp-123456", false, time.Time{}, false},                                                                    // an older ops's, just written
		{"img", false, old, false},
		{".img.key", false, old, false},
		{".img.lock", false, old, false},
		{".tmp-1-2-ab", false, old, false},
	} {
		p := filepath.Join(dir, tc.name)
		if tc.dir {
			os.Mkdir(p, 0o755)
			os.WriteFile(filepath.Join(p, "x"), []byte("x"), 0o644)
		} else {
			os.WriteFile(p, []byte("x"), 0o644)
		}
		if !tc.mtime.IsZero() {
			os.Chtimes(p, tc.mtime, tc.mtime)
		}
		t.Cleanup(func() {
			_, err := os.Stat(p)
			if gone := errors.Is(err, os.ErrNotExist); gone != tc.remove {
				t.Errorf("%s: removed %v, want %v", tc.name, gone, tc.remove)
			}
		})
	}
	if err := ClearStale(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{live.Name(), liveDir} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("a live writer's %s was removed", p)
		}
	}
	if err := ClearStale(filepath.Join(dir, "none")); err != nil {
		t.Errorf("missing folder: %v", err)
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteAtomic(p, []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("failed")
	if err := WriteAtomicWith(p, 0o644, func(f *os.File) error { f.Write([]byte("two")); return failed }); err != failed {
		t.Fatalf("write error: %v", err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "one" || st.Mode().Perm() != 0o640 {
		t.Fatalf("%q %v", b, st.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestRenameNew(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "x")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		src, err := MkdirTemp(dir, "x")
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(src, "who"), []byte(strconv.Itoa(i)), 0o644)
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = RenameNew(src, dest) }()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, os.ErrExist):
			t.Errorf("loser's error: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d winners", won)
	}
}

func TestReplaceDir(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "pkg")
	for i, content := range []string{"one", "two"} {
		tmp, err := MkdirTemp(dir, "get")
		if err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(tmp, "x")
		os.Mkdir(src, 0o755)
		os.WriteFile(filepath.Join(src, "v"), []byte(content), 0o644)
		if err := ReplaceDir(src, dest, tmp); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dest, "v")); string(b) != content {
			t.Fatalf("round %d: %q", i, b)
		}
		os.RemoveAll(tmp)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ".x.lock")
	unlock, err := TryLock(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryLock(p); err != ErrLocked {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	img := filepath.Join(dir, "img")
	os.WriteFile(img, nil, 0o644)
	r1, err := ShareLock(img)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ShareLock(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryLockExisting(img); err != ErrLocked {
		t.Fatalf("exclusive under shared: %v", err)
	}
	r1()
	r2()
	u, err := TryLockExisting(img)
	if err != nil {
		t.Fatal(err)
	}
	u()
	if _, err := ShareLock(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestRemoveAll(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "inst")
	os.MkdirAll(filepath.Join(p, "a"), 0o755)
	if err := RemoveAll(p); err != nil {
		t.Fatal(err)
	}
	if err := RemoveAll(p); err != nil {
		t.Fatalf("missing: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

// TestRemoveLocked: a lock file removed by its holder is not the lock a
// waiting process gets: it takes a new file at the same path.
func TestRemoveLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), ".img.lock")
	unlock, err := Lock(p)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func())
	go func() {
		u, err := Lock(p)
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	time.Sleep(50 * time.Millisecond) // the second Lock waits on the first file
	if err := RemoveLocked(p); err != nil {
		t.Fatal(err)
	}
	unlock()
	u := <-got
	defer u()
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the waiter holds no lock file at the path: %v", err)
	}
	if _, err := TryLock(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("the waiter's lock does not hold the new file: %v", err)
	}
}
