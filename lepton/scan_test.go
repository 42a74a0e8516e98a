package lepton

import (
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"github.com/opsdev/ops/internal/testutil"
)

// TestStatAt checks that statAt gives what os.Stat and os.Lstat give, down
// to Sys's syscall.Stat_t, which the image key reads.
func TestStatAt(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "file"), "contents")
	if err := os.Chmod(filepath.Join(dir, "file"), 0o4751); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o1750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	for _, tc := range []struct {
		name     string
		noFollow bool
	}{{"file", false}, {"sub", true}, {"link", true}, {"link", false}} {
		host := filepath.Join(dir, tc.name)
		got, err := statAt(fd, tc.name, host, tc.noFollow)
		if err != nil {
			t.Fatal(err)
		}
		stat := os.Stat
		if tc.noFollow {
			stat = os.Lstat
		}
		want, _ := stat(host)
		// Reading a link may set its access time between the two.
		gs, ws := *got.Sys().(*syscall.Stat_t), *want.Sys().(*syscall.Stat_t)
		gs.Atim = ws.Atim
		if got.Name() != want.Name() || got.Size() != want.Size() || got.Mode() != want.Mode() ||
			!got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() || !reflect.DeepEqual(gs, ws) {
			t.Errorf("%s (noFollow %v): %v %v %v, os: %v %v %v", tc.name, tc.noFollow, got.Mode(), got.Size(), got.Sys(), want.Mode(), want.Size(), want.Sys())
		}
	}
	if _, err := statAt(fd, "missing", filepath.Join(dir, "missing"), false); !os.IsNotExist(err) {
		t.Errorf("missing: %v", err)
	}
}
