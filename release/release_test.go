package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/internal/testutil"
)

// releaseTarball packs a fake release the way Nanos publishes one.
func releaseTarball(t *testing.T, k testutil.Release, breakBoot bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(name string, data []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	kern, _ := os.ReadFile(k.Kernel)
	boot, _ := os.ReadFile(k.Boot)
	if breakBoot {
		boot[510] = 0
	}
	add("kernel.img", kern)
	add("boot.img", boot)
	add("klibs/strace", []byte("klib"))
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestInstallRelease(t *testing.T) {
	src := filepath.Join(t.TempDir(), "release")
	os.Mkdir(src, 0o755)
	k := testutil.FakeRelease(t, src)
	home := newStore(t.TempDir())
	if _, err := home.Find(""); err == nil || !strings.Contains(err.Error(), "no Nanos release") {
		t.Fatalf("empty home: %v", err)
	}
	// From a folder, version from --version.
	r, err := home.Install(src, "0.1.50")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.KlibDir, "strace")); err != nil {
		t.Fatal(err)
	}
	// From a tarball, version from its name; latest.txt follows.
	tgz := filepath.Join(t.TempDir(), "nanos-release-linux-0.1.55.tar.gz")
	os.WriteFile(tgz, releaseTarball(t, k, false), 0o644)
	if r, err = home.Install(tgz, ""); err != nil || r.Version != "0.1.55" {
		t.Fatalf("%+v %v", r, err)
	}
	if v, _ := home.Latest(); v != "0.1.55" {
		t.Fatalf("latest %q", v)
	}
	if got := strings.Join(home.installed(), " "); got != "0.1.50 0.1.55" {
		t.Fatalf("installed %q", got)
	}
	if r, err = home.Find("0.1.50"); err != nil || r.Version != "0.1.50" {
		t.Fatal(err)
	}
	if _, err := home.Find("9.9.9"); err == nil || !strings.Contains(err.Error(), "installed: 0.1.50, 0.1.55") {
		t.Fatalf("unknown version: %v", err)
	}
	// A broken release is refused and nothing changes.
	bad := filepath.Join(t.TempDir(), "nanos-release-linux-0.1.56.tar.gz")
	os.WriteFile(bad, releaseTarball(t, k, true), 0o644)
	if _, err := home.Install(bad, ""); err == nil || !strings.Contains(err.Error(), "55AA") {
		t.Fatalf("broken boot.img: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home.Dir, "0.1.56")); err == nil {
		t.Fatal("broken release was installed")
	}
	if v, _ := home.Latest(); v != "0.1.55" {
		t.Fatalf("latest changed to %q", v)
	}
	if left, _ := filepath.Glob(filepath.Join(home.Dir, ".*")); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	if _, err := home.Install(src, ""); err == nil || !strings.Contains(err.Error(), "--version") {
		t.Fatalf("no version: %v", err)
	}
	if _, err := home.Install(src, "../x"); err == nil {
		t.Fatal("a version with a path was accepted")
	}
}

func TestDownloadRelease(t *testing.T) {
	k := testutil.FakeRelease(t, t.TempDir())
	tgz := releaseTarball(t, k, false)
	sum := sha256.Sum256(tgz)
	var publishSum string
	mux := http.NewServeMux()
	mux.HandleFunc("/latest.txt", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("0.1.60\n")) })
	mux.HandleFunc("/0.1.60/nanos-release-linux-0.1.60.tar.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(tgz) })
	mux.HandleFunc("/0.1.60/nanos-release-linux-0.1.60.tar.gz.sha256", func(w http.ResponseWriter, r *http.Request) {
		if publishSum == "" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(publishSum + "  nanos-release-linux-0.1.60.tar.gz\n"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()
	d := Downloader{BaseURL: srv.URL}
	v, err := d.LatestVersion(ctx)
	if err != nil || v != "0.1.60" {
		t.Fatalf("%q %v", v, err)
	}
	for _, tc := range []struct {
		name, sum string
		verified  bool
		err       string
	}{
		{"no published checksum", "", false, ""},
		{"checksum matches", hex.EncodeToString(sum[:]), true, ""},
		{"checksum mismatch", strings.Repeat("0", 64), false, "checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			publishSum = tc.sum
			home := newStore(t.TempDir())
			r, verified, err := d.Install(ctx, home, "0.1.60")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v", err)
				}
				if _, err := home.Find(""); err == nil {
					t.Fatal("installed despite the mismatch")
				}
				return
			}
			if err != nil || verified != tc.verified || r.Version != "0.1.60" {
				t.Fatalf("%+v verified=%v err=%v", r, verified, err)
			}
		})
	}
	// Offline: one clear line.
	off := Downloader{BaseURL: "http://127.0.0.1:1"}
	if _, err := off.LatestVersion(ctx); err == nil || !strings.Contains(err.Error(), "offline") || !strings.Contains(err.Error(), "--from") {
		t.Fatalf("offline error %v", err)
	}
}

func TestVersionFromName(t *testing.T) {
	for in, want := range map[string]string{
		"/x/nanos-release-linux-0.1.55.tar.gz": "0.1.55", "nanos-release-linux-0.1.55.tgz": "0.1.55",
		"/r/0.1.49/": "0.1.49", "/tmp/release": "", "/b/release-0.1.99": "0.1.99",
		"nanos-release-linux-0.1.55": "0.1.55", "my-build": "", "release-": "",
		"/x/nanos-release-linux-0.1.55-virt.tar.gz": "0.1.55", "/b/release-0.1.55-virt": "0.1.55",
	} {
		if got := versionFromName(in); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

// newStore is the releases of an ops home at dir.
func newStore(dir string) Store {
	return Store{Dir: dir, LatestFile: filepath.Join(dir, "latest.txt")}
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{
		{"0.1.9", "0.1.10", true}, {"0.1.10", "0.1.9", false}, {"6.1.0-9-cloud", "6.1.0-10-cloud", true},
		{"1.0", "1.0.1", true}, {"1.0", "1.0", false}, {"a", "b", true},
	} {
		if got := versionLess(tc.a, tc.b); got != tc.less {
			t.Errorf("versionLess(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

// TestARM64Releases: arm64 releases sit beside amd64 ones as nanovms/ops
// keeps them (<version>-arm), each architecture finds its own, and a
// release of the wrong architecture is refused.
func TestARM64Releases(t *testing.T) {
	x86src, armsrc := t.TempDir(), t.TempDir()
	testutil.FakeRelease(t, x86src)
	testutil.FakeReleaseARM64(t, armsrc)
	dir := t.TempDir()
	x86, arm := newStore(dir), newStore(dir)
	arm.Arch = arch.ARM64
	if _, err := arm.Find(""); err == nil || !strings.Contains(err.Error(), "ops update --arch arm64") {
		t.Fatalf("empty home: %v", err)
	}
	// Into a home without latest.txt, an arm64 release names itself.
	if r, err := arm.Install(armsrc, "0.1.54"); err != nil || r.Boot != "" || filepath.Base(r.Dir) != "0.1.54-arm" || filepath.Base(r.UEFI) != "bootaa64.efi" {
		t.Fatalf("%+v %v", r, err)
	}
	if v, _ := x86.Latest(); v != "0.1.54" {
		t.Fatalf("latest %q", v)
	}
	if _, err := x86.Find(""); err == nil || !strings.Contains(err.Error(), "no Nanos release") {
		t.Fatalf("an arm64 release was found for amd64: %v", err)
	}
	if _, err := x86.Install(x86src, "0.1.55"); err != nil {
		t.Fatal(err)
	}
	// latest.txt is amd64's: an arm64 install leaves it, and arm64 finds
	// its newest release when latest names one it lacks.
	if _, err := arm.Install(armsrc, "0.1.53"); err != nil {
		t.Fatal(err)
	}
	if v, _ := x86.Latest(); v != "0.1.55" {
		t.Fatalf("latest %q", v)
	}
	if r, err := arm.Find(""); err != nil || r.Version != "0.1.54" || r.Arch != arch.ARM64 {
		t.Fatalf("%+v %v", r, err)
	}
	if r, err := x86.Find(""); err != nil || r.Version != "0.1.55" || filepath.Base(r.Boot) != "boot.img" {
		t.Fatalf("%+v %v", r, err)
	}
	if got := strings.Join(arm.installed(), " ") + " | " + strings.Join(x86.installed(), " "); got != "0.1.53 0.1.54 | 0.1.55" {
		t.Fatalf("installed %q", got)
	}
	if _, err := arm.Find("0.1.54-arm"); err == nil {
		t.Fatal("a folder name was taken for a version")
	}
	if _, err := arm.Install(x86src, "0.1.56"); err == nil || !strings.Contains(err.Error(), "want arm64 (aarch64)") {
		t.Fatalf("an x86 release installed for arm64: %v", err)
	}
	if _, err := x86.Install(armsrc, "0.1.56"); err == nil || !strings.Contains(err.Error(), "want amd64 (x86_64)") {
		t.Fatalf("an arm64 release installed for amd64: %v", err)
	}
}
