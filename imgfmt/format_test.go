package imgfmt

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testRaw writes a sparse raw image of size bytes with data at a few
// places: the start, a run crossing a 64 KiB chunk, a lone sector past
// 2 MiB (a second VHDX block) and the last bytes.
func testRaw(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewSource(1))
	put := func(off, n int64) {
		off = max(off, 0)
		if off >= size {
			return
		}
		b := make([]byte, min(n, size-off))
		rnd.Read(b)
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 1000)
	put(chunkSize-100, 300)
	put(2<<20+512*7, 512)
	put(size-700, 700)
	if size > 8192 {
		// A recognisable run near the end, for checks that read one place.
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xab}, 4096), size-8192); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func convert(t *testing.T, raw string, f Format) string {
	t.Helper()
	out := filepath.Join(filepath.Dir(raw), "out"+f.Ext())
	src, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := Convert(dst, src, f); err != nil {
		t.Fatal(err)
	}
	return out
}

func needQEMUImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("SKIP: qemu-img is not installed (make deps installs qemu-utils)")
	}
}

// TestQEMUImgReads has qemu-img check each format: the format it sees, the
// virtual size, `check` where it has one, and `compare` against the raw
// image (which treats the padding of VHD as the zeros it is).
func TestQEMUImgReads(t *testing.T) {
	needQEMUImg(t)
	for _, size := range []int64{5<<20 + 3*512, 64 << 10, 3 << 20, 5<<30 + 512} {
		raw := testRaw(t, size)
		for _, tc := range []struct {
			f    Format
			name string
			virt int64
		}{
			{Raw, "raw", size},
			{QCOW2, "qcow2", size},
			{VMDK, "vmdk", size},
			{VHD, "vpc", roundUp(size, 1<<20)},
			{VHDX, "vhdx", size},
		} {
			out := convert(t, raw, tc.f)
			args := []string{"info", "--output=json", out}
			if tc.f == VHD {
				// A fixed VHD is the raw disk with a footer at the end:
				// nothing at its start to recognise, so qemu-img (like
				// every other reader) is told the format.
				args = append(args, "-f", "vpc")
			}
			b, err := exec.Command("qemu-img", args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: qemu-img info: %v\n%s", tc.f, err, b)
			}
			var info struct {
				Format      string `json:"format"`
				VirtualSize int64  `json:"virtual-size"`
				Specific    struct {
					Data struct {
						Compat     string `json:"compat"`
						CreateType string `json:"create-type"`
					} `json:"data"`
				} `json:"format-specific"`
			}
			if err := json.Unmarshal(b, &info); err != nil {
				t.Fatal(err)
			}
			if info.Format != tc.name || info.VirtualSize != tc.virt {
				t.Errorf("size %d, %s: qemu-img sees format %q, virtual size %d; want %q, %d", size, tc.f, info.Format, info.VirtualSize, tc.name, tc.virt)
			}
			if tc.f == QCOW2 && info.Specific.Data.Compat != "1.1" {
				t.Errorf("qcow2 compat %q, want 1.1 (version 3)", info.Specific.Data.Compat)
			}
			if tc.f == VMDK && info.Specific.Data.CreateType != "streamOptimized" {
				t.Errorf("vmdk create type %q, want streamOptimized", info.Specific.Data.CreateType)
			}
			if tc.f == QCOW2 || tc.f == VHDX || tc.f == VMDK {
				if b, err := exec.Command("qemu-img", "check", "-f", tc.name, out).CombinedOutput(); err != nil {
					t.Errorf("%s: qemu-img check: %v\n%s", tc.f, err, b)
				}
			}
			if tc.f == VHDX && size > 1<<30 {
				// qemu-img compare reads every zero of a VHDX (~10 s for
				// 5 GiB): read back the run past the first sector bitmap
				// entry of the BAT instead.
				cmd := exec.Command("qemu-io", "-r", "-f", "vhdx", "-c", fmt.Sprintf("read -P 0xab %d 4096", size-8192), out)
				if b, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(b), "Pattern verification failed") {
					t.Errorf("vhdx: qemu-io read near the end: %v\n%s", err, b)
				}
				continue
			}
			if b, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", tc.name, raw, out).CombinedOutput(); err != nil {
				t.Errorf("size %d, %s: qemu-img compare: %v\n%s", size, tc.f, err, b)
			}
		}
	}
}

// TestGCPTarball reads the tarball back with archive/tar: exactly one
// member, disk.raw, a GNU sparse file padded to a GiB whose bytes are the
// raw image's followed by zeros.
func TestGCPTarball(t *testing.T) {
	for _, size := range []int64{5<<20 + 3*512, 512} {
		raw := testRaw(t, size)
		out := convert(t, raw, GCP)
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		var names []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
			if h.Typeflag != tar.TypeGNUSparse || h.Format != tar.FormatGNU {
				t.Errorf("disk.raw is type %q format %v; want GNU sparse", h.Typeflag, h.Format)
			}
			if h.Size != 1<<30 {
				t.Errorf("disk.raw is %d bytes, want 1 GiB", h.Size)
			}
			want, _ := os.ReadFile(raw)
			got := sha256.New()
			head := make([]byte, size)
			if _, err := io.ReadFull(tr, head); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(head, want) {
				t.Errorf("disk.raw's first %d bytes differ from the raw image", size)
			}
			n, err := io.Copy(got, tr)
			if err != nil || n != h.Size-size {
				t.Fatalf("reading the rest of disk.raw: %d bytes, %v", n, err)
			}
			zeros := sha256.New()
			io.CopyN(zeros, zeroReader{}, n)
			if !bytes.Equal(got.Sum(nil), zeros.Sum(nil)) {
				t.Errorf("disk.raw's padding is not zeros")
			}
		}
		f.Close()
		if strings.Join(names, ",") != "disk.raw" {
			t.Errorf("tarball holds %q, want exactly disk.raw", names)
		}
		if tarBin, err := exec.LookPath("tar"); err == nil {
			b, err := exec.Command(tarBin, "-tzf", out).CombinedOutput()
			if err != nil || string(b) != "disk.raw\n" {
				t.Errorf("GNU tar lists %q (%v), want disk.raw", b, err)
			}
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestReproducible: converting the same raw image twice gives the same
// bytes in every format.
func TestReproducible(t *testing.T) {
	raw := testRaw(t, 5<<20+3*512)
	for _, f := range Formats() {
		a := convert(t, raw, f)
		ab, _ := os.ReadFile(a)
		os.Remove(a)
		b := convert(t, raw, f)
		bb, _ := os.ReadFile(b)
		if !bytes.Equal(ab, bb) {
			t.Errorf("%s: two conversions of one image differ", f)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
		err  string
	}{
		{"qcow2", QCOW2, ""}, {"VMDK", VMDK, ""}, {"gcp", GCP, ""},
		{"iso", "", `format "iso" is not one ops writes; use one of raw, qcow2, vmdk, vhd, vhdx, gcp`},
	} {
		f, err := ParseFormat(tc.in)
		if f != tc.want || (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q, %s", tc.in, f, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		in   string
		want Format
		ok   bool
	}{
		{"gcp", GCP, true}, {"aws", VMDK, true}, {"azure", VHD, true}, {"hyper-v", VHDX, true},
		{"hyperv", VHDX, true}, {"openstack", QCOW2, true}, {"proxmox", QCOW2, true},
		{"vsphere", VMDK, true}, {"onprem", Raw, true}, {"nowhere", "", false},
	} {
		tg, err := ParseTarget(tc.in)
		if tg.Format != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseTarget(%q) = %+v, %v", tc.in, tg, err)
		}
	}
}

func TestVHDGeometry(t *testing.T) {
	for _, tc := range []struct {
		sectors int64
		c       uint16
		h, s    uint8
	}{
		{2048, 30, 4, 17},       // 1 MiB
		{65536 * 2, 963, 8, 17}, // 64 MiB
		{65535 * 16 * 255 * 2, 65535, 16, 255},
	} {
		c, h, s := vhdGeometry(tc.sectors)
		if c != tc.c || h != tc.h || s != tc.s {
			t.Errorf("vhdGeometry(%d) = %d/%d/%d, want %d/%d/%d", tc.sectors, c, h, s, tc.c, tc.h, tc.s)
		}
	}
}

func TestTarNumber(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "00000000000\x00"},
		{0o644, "00000000644\x00"},
		{8 << 30, "\x80\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00"},
	} {
		b := make([]byte, 12)
		tarNumber(b, tc.n)
		if string(b) != tc.want {
			t.Errorf("tarNumber(%d) = %q, want %q", tc.n, b, tc.want)
		}
	}
}
