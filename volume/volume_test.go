package volume

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	opsfs "github.com/opsdev/ops/fs"
)

func TestParseMount(t *testing.T) {
	for _, tc := range []struct {
		spec, name, path string
		ro               bool
		err              string
	}{
		{"data:/data", "data", "/data", false, ""},
		{"data:/srv/db/:ro", "data", "/srv/db", true, ""},
		{"0bc2fd9c-bd85-404b-b9c3-04e41023d0a6:/x", "0bc2fd9c-bd85-404b-b9c3-04e41023d0a6", "/x", false, ""},
		{"data", "", "", false, "write VOLUME:/path"},
		{":/data", "", "", false, "write VOLUME:/path"},
		{"data:rel", "", "", false, "must be absolute"},
	} {
		name, p, ro, err := ParseMount(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || name != tc.name || p != tc.path || ro != tc.ro {
			t.Errorf("%q: %q %q %v %v", tc.spec, name, p, ro, err)
		}
	}
}

// TestNanosVolume: a TFS volume with a seed folder, found by name and
// UUID, locked while in use, of the Nanos guest's format only.
func TestNanosVolume(t *testing.T) {
	home := Store{Dir: t.TempDir(), ReadTree: flatTree}
	seed := t.TempDir()
	os.WriteFile(filepath.Join(seed, "hello.txt"), []byte("seeded\n"), 0o644)
	v, err := home.Create("data", 16<<20, seed, TFS{})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(v.Path) != "data:"+v.UUID+".raw" || v.Format.Name() != "tfs" || v.Size < 16<<20 {
		t.Fatalf("%+v", v)
	}
	if left, _ := filepath.Glob(filepath.Join(home.Dir, ".*")); len(left) > 0 {
		t.Errorf("left beside the volume: %v", left)
	}
	// Used is what the sparse file takes on disk: more than nothing (the
	// metadata and the seed), less than its size.
	if v.Used <= 0 || v.Used >= v.Size {
		t.Fatalf("used %d of %d bytes", v.Used, v.Size)
	}
	f, _ := os.Open(v.Path)
	rd, err := opsfs.OpenTFS(f, v.Size)
	if err != nil {
		t.Fatal(err)
	}
	n, err := rd.Lookup("/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := rd.ReadFile(n); string(b) != "seeded\n" || rd.Label != "data" || formatUUID(rd.UUID) != v.UUID {
		t.Fatalf("content %q label %q uuid %s", b, rd.Label, formatUUID(rd.UUID))
	}
	f.Close()
	if byUUID, err := home.Get(v.UUID); err != nil || byUUID.Name != "data" {
		t.Fatalf("by UUID: %+v %v", byUUID, err)
	}
	if _, err := home.Create("data", 16<<20, "", TFS{}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("duplicate: %v", err)
	}
	unlock, err := v.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if err := home.Delete("data"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("delete while locked: %v", err)
	}
	unlock()
	// The Linux guest cannot mount a Nanos volume.
	if _, err := home.ResolveMounts(map[string]string{"data": "/data"}, Ext4{}); err == nil || !strings.Contains(err.Error(), "volume data is a tfs volume; this guest mounts ext4 volumes") {
		t.Fatalf("format check: %v", err)
	}
	if m, err := home.ResolveMounts(map[string]string{"data": "/data:ro"}, TFS{}); err != nil || len(m) != 1 || !m[0].ReadOnly || m[0].Path != "/data" {
		t.Fatalf("%+v %v", m, err)
	}
	if err := home.Delete("data"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.Path); !os.IsNotExist(err) {
		t.Fatal("volume file remains")
	}
}

// TestVolumeCorrupt: a file that holds no filesystem is one clear error.
func TestVolumeCorrupt(t *testing.T) {
	home := Store{Dir: t.TempDir()}
	os.MkdirAll(home.Dir, 0o755)
	os.WriteFile(filepath.Join(home.Dir, "junk:1234.raw"), []byte("not a filesystem"), 0o644)
	if _, err := home.Get("junk"); err == nil || !strings.Contains(err.Error(), "holds no filesystem") {
		t.Fatalf("%v", err)
	}
	if vols, err := home.List(); err != nil || len(vols) != 0 {
		t.Fatalf("%v %v", vols, err)
	}
}

// flatTree reads the files of a folder (not its subfolders) as a tree.
func flatTree(dir string) (*opsfs.Tree, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	tree := opsfs.NewTree()
	for _, e := range ents {
		st, err := e.Info()
		if err != nil {
			return nil, err
		}
		if err := tree.Add(opsfs.Entry{Path: "/" + e.Name(), Kind: opsfs.KindFile, Source: filepath.Join(dir, e.Name()), Size: st.Size(), Mode: st.Mode().Perm()}); err != nil {
			return nil, err
		}
	}
	return tree, nil
}
