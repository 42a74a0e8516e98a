package lepton

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSplitShares: Mounts entries naming folders become shares tagged in
// the order of their host paths, their manifest entries "%N"; volumes
// stay as they are; a folder that is not there is one line.
func TestSplitShares(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"b", "a"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shares, volumes, manifest, err := splitShares(map[string]string{
		filepath.Join(dir, "b"): "/srv/b:ro", "./a": "/srv/a", "data": "/data",
	}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(shares) != 2 || shares[0].Host != filepath.Join(dir, "a") || shares[0].Tag != 0 || shares[0].Path != "/srv/a" ||
		shares[1].Host != filepath.Join(dir, "b") || shares[1].Tag != 1 || !shares[1].ReadOnly {
		t.Fatalf("shares %+v", shares)
	}
	if len(volumes) != 1 || volumes["data"] != "/data" {
		t.Fatalf("volumes %v", volumes)
	}
	if len(manifest) != 3 || manifest["%0"] != "/srv/a" || manifest["%1"] != "/srv/b:ro" || manifest["data"] != "/data" {
		t.Fatalf("manifest %v", manifest)
	}
	for _, bad := range []map[string]string{{"./gone": "/x"}, {"/etc/hostname": "/x"}, {dir + "/a": "relative"}} {
		if _, _, _, err := splitShares(bad, dir); err == nil || !strings.HasPrefix(err.Error(), "Mounts: ") {
			t.Errorf("%v: error %v", bad, err)
		}
	}
}

// TestQEMUShares: Nanos's shares are exported read-write whatever the
// guest's mount (its 9p client opens every file for writing, which a
// readonly=on export refuses), and QEMU runs as the shared folders'
// owner, a read-only one's too (it must read it).
func TestQEMUShares(t *testing.T) {
	dir := t.TempDir()
	shares := []Share{{Host: dir, Path: "/conf", ReadOnly: true, Tag: 0}}
	out, runAs := qemuShares(shares, "65534:65534")
	if len(out) != 1 || out[0].ReadOnly || out[0].Path != dir || out[0].Tag != "0" {
		t.Errorf("shares %+v", out)
	}
	if want := folderOwner(dir); runAs != want && !(want == "0:0" && runAs == "") {
		t.Errorf("QEMU runs as %q, want the folder's owner %s", runAs, want)
	}
	if _, runAs := qemuShares(shares, ""); runAs != "" {
		t.Errorf("QEMU not dropping privileges runs as %q", runAs)
	}
}
