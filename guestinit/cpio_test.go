package guestinit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	opsfs "github.com/opsdev/ops/fs"
)

// cpioOf is the archive ops writes (fs.WriteCPIO) for entries.
func cpioOf(t testing.TB, ents []opsfs.Entry) []byte {
	t.Helper()
	tree := opsfs.NewTree()
	for _, e := range ents {
		if err := tree.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "a.cpio"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := opsfs.WriteCPIO(f, tree.Entries()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUnpackCPIO: an archive ops writes unpacks as its entries (folders,
// small and large files, links), over what was there; names that lead
// out, other kinds and archives cut short are errors.
func TestUnpackCPIO(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 20000)
	arch := cpioOf(t, []opsfs.Entry{
		{Path: "/etc/hosts", Kind: opsfs.KindFile, Data: []byte("127.0.0.1 me\n")},
		{Path: "/etc/link", Kind: opsfs.KindSymlink, Target: "hosts"},
		{Path: "/var/big", Kind: opsfs.KindFile, Data: big, Mode: 0o600},
		{Path: "/empty", Kind: opsfs.KindDir},
		{Path: "/.ops/manifest.json", Kind: opsfs.KindFile, Data: []byte("{}")},
	})
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("the base's, longer than the own one\n"), 0o644)
	if err := UnpackCPIO(bytes.NewReader(arch), root); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"etc/hosts": "127.0.0.1 me\n", "var/big": string(big), ".ops/manifest.json": "{}"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s: %d bytes, %v", p, len(b), err)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/link")); err != nil || l != "hosts" {
		t.Errorf("etc/link: %q %v", l, err)
	}
	if st, err := os.Stat(filepath.Join(root, "var/big")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("var/big: %v %v", st, err)
	}
	if st, err := os.Stat(filepath.Join(root, "empty")); err != nil || !st.IsDir() {
		t.Errorf("empty: %v", err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"cut short", arch[:len(arch)-200], "cpio"},
		{"not cpio", []byte(strings.Repeat("x", 200)), "not a newc archive"},
		{"out of root", bytes.Replace(arch, []byte("etc/hosts\x00"), []byte("../../hos\x00"), 1), "not a clean path"},
	} {
		if err := UnpackCPIO(bytes.NewReader(tc.b), t.TempDir()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// FuzzUnpackCPIO: no archive writes outside the folder it unpacks into.
func FuzzUnpackCPIO(f *testing.F) {
	f.Add(cpioOf(f, []opsfs.Entry{{Path: "/a/b", Kind: opsfs.KindFile, Data: []byte("x")}, {Path: "/l", Kind: opsfs.KindSymlink, Target: "../../x"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		root := filepath.Join(dir, "root")
		os.Mkdir(root, 0o755)
		UnpackCPIO(bytes.NewReader(b), root)
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Fatalf("unpacking wrote beside its folder: %v", ents)
		}
	})
}
