package lepton

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/testutil"
)

// TestKeyLine checks that each entry's part of an image key is what the
// fmt-based key wrote, so images cached by an older ops stay reused.
func TestKeyLine(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "prog")
	testutil.WriteFile(t, src, "program")
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	stamp := func(p string, st os.FileInfo) string {
		return fmt.Sprintf("src: %s %d %d %d %o\n", p, st.Size(), st.ModTime().UnixNano(), st.Sys().(*syscall.Stat_t).Ino, st.Mode())
	}
	cases := []struct {
		name string
		e    opsfs.Entry
		st   os.FileInfo
		rest string // what follows the common part
	}{
		{"folder", opsfs.Entry{Path: "/usr/lib", Kind: opsfs.KindDir, Mode: 0o755}, nil, ""},
		{"link", opsfs.Entry{Path: "/lib/libc.so", Kind: opsfs.KindSymlink, Target: "libc \"6\"\n", Mode: 0o777}, nil, ""},
		{"literal", opsfs.Entry{Path: "/etc/hosts", Kind: opsfs.KindFile, Data: []byte("x"), Mode: 0o644}, nil,
			fmt.Sprintf("data %x", sha256.Sum256([]byte("x")))},
		{"host file", opsfs.Entry{Path: "/prög\t", Kind: opsfs.KindFile, Source: src, Mode: 0o4755}, st, stamp(src, st)},
		{"no source", opsfs.Entry{Path: "/empty", Kind: opsfs.KindFile}, nil, "src: none\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.e
			want := fmt.Sprintf("\n%q %d %o %q ", e.Path, e.Kind, e.Mode, e.Target) + tc.rest
			if got := string(appendKeyLine(nil, &e, tc.st)); got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}
