//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsdev/ops/qemu"
)

type buildJSON struct {
	Image, Raw, Format string
	Files              []struct {
		Path, Format, SHA256 string
		Size                 int64
	}
	Next []string
}

func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("SKIP: %s is not installed ('make test-deps' installs %s)", name, pkg)
	}
}

// bootDisk boots a disk image of any format BIOS-first on q35, as a cloud
// VM boots it, and returns the console and the guest's exit code.
func bootDisk(t *testing.T, file, format string) (string, int) {
	t.Helper()
	vm := qemu.VM{Machine: qemu.Q35, Accel: qemu.TCG, DebugExit: true, Net: qemu.Net{Mode: "none"},
		Drives: []qemu.Drive{{File: file, Format: format, Snapshot: true}}}
	argv, err := vm.Args()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode()&1 == 0 {
		t.Fatalf("%s (%s): QEMU did not exit through isa-debug-exit: %v\n%s", file, format, err, out)
	}
	return string(out), ee.ExitCode() >> 1
}

// TestE2EFormats builds a Nanos hello in every format and checks each as
// its importer would see it: qemu-img reads the format and the virtual
// size and finds the disk identical to the raw image; the GCP tarball
// holds exactly disk.raw; --json's sizes and SHA-256s are the files'. The
// qcow2, VMDK and VHD images then boot (BIOS, whole disk, TCG).
func TestE2EFormats(t *testing.T) {
	e := getEnv(t)
	home := nanosHome(t)
	needTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	var raw string
	outs := map[string]string{}
	for _, tc := range []struct{ format, qemuName string }{
		{"raw", "raw"}, {"qcow2", "qcow2"}, {"vmdk", "vmdk"}, {"vhd", "vpc"}, {"vhdx", "vhdx"}, {"gcp", ""},
	} {
		out := filepath.Join(dir, "hello."+tc.format)
		r := e.run(t, home, "build", "./hello_static", "-a", "3", "--format", tc.format, "-o", out, "--json")
		if r.code != 0 {
			t.Fatalf("build --format %s: exit %d: %s", tc.format, r.code, r.stderr)
		}
		var j buildJSON
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
			t.Fatalf("--json: %v: %s", err, r.stdout)
		}
		if j.Image != out {
			t.Errorf("--format %s: image %q, want %q", tc.format, j.Image, out)
		}
		for _, f := range j.Files {
			b, err := os.ReadFile(f.Path)
			if err != nil {
				t.Fatalf("--json names %s: %v", f.Path, err)
			}
			sum := sha256.Sum256(b)
			if int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
				t.Errorf("--json says %s is %d bytes, sha256 %s; it is %d, %x", f.Path, f.Size, f.SHA256, len(b), sum)
			}
		}
		if want := map[bool]int{true: 1, false: 2}[tc.format == "raw"]; len(j.Files) != want {
			t.Errorf("--format %s: --json lists %d files, want %d", tc.format, len(j.Files), want)
		}
		if tc.format == "raw" {
			raw = out
			continue
		}
		outs[tc.format] = out
		if tc.format == "gcp" {
			b, err := exec.Command("tar", "-tvzf", out).CombinedOutput()
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if err != nil || len(lines) != 1 || !strings.HasSuffix(lines[0], " disk.raw") {
				t.Errorf("the GCP tarball lists %q (%v), want exactly disk.raw", b, err)
			}
			continue
		}
		b, err := exec.Command("qemu-img", "info", "--output=json", "-f", tc.qemuName, out).CombinedOutput()
		if err != nil {
			t.Fatalf("qemu-img info %s: %v %s", out, err, b)
		}
		var info struct {
			Format      string `json:"format"`
			VirtualSize int64  `json:"virtual-size"`
		}
		json.Unmarshal(b, &info)
		st, _ := os.Stat(raw)
		want := st.Size()
		if tc.format == "vhd" {
			want = (want + 1<<20 - 1) &^ (1<<20 - 1)
		}
		if info.Format != tc.qemuName || info.VirtualSize != want {
			t.Errorf("qemu-img info %s: format %q, virtual size %d; want %q, %d", out, info.Format, info.VirtualSize, tc.qemuName, want)
		}
		if b, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", tc.qemuName, raw, out).CombinedOutput(); err != nil {
			t.Errorf("qemu-img compare %s: %v %s", out, err, b)
		}
	}
	for _, tc := range []struct{ format, qemuName string }{{"qcow2", "qcow2"}, {"vmdk", "vmdk"}, {"vhd", "vpc"}} {
		con, code := bootDisk(t, outs[tc.format], tc.qemuName)
		if code != 3 || !strings.Contains(con, "hello from C, 2 args") {
			t.Errorf("%s boot: exit %d\n%s", tc.format, code, con)
		}
	}
}

// TestE2EImageCreate: the target names map to formats and the next
// commands are printed, nothing run.
func TestE2EImageCreate(t *testing.T) {
	e := getEnv(t)
	home := nanosHome(t)
	r := e.run(t, home, "image", "create", "./hello_static", "-t", "gcp", "-i", "My_App", "--json")
	if r.code != 0 {
		t.Fatalf("image create: exit %d: %s", r.code, r.stderr)
	}
	var j buildJSON
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatal(err)
	}
	if j.Format != "gcp" || !strings.HasSuffix(j.Image, "/images/My_App.tar.gz") || len(j.Next) != 2 ||
		!strings.HasPrefix(j.Next[1], "gcloud compute images create my-app --source-uri gs://$BUCKET/My_App.tar.gz") {
		t.Errorf("image create -t gcp: %+v", j)
	}
	r = e.run(t, home, "image", "create", "./hello_static", "-t", "openstack")
	if r.code != 0 || !strings.HasSuffix(strings.TrimSpace(r.stdout), "/images/hello_static.qcow2") ||
		!strings.Contains(r.stderr, "openstack image create --disk-format qcow2") {
		t.Errorf("image create -t openstack: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
}

// TestE2EFormatErrors: disk-only options on the Linux guest, and unknown
// names, are one clear line each.
func TestE2EFormatErrors(t *testing.T) {
	e := getEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "--guest", "linux", "--format", "qcow2", "./hello_static"}, "the Linux guest's image is an initramfs, not a disk"},
		{[]string{"build", "--guest", "linux", "--uefi", "./hello_static"}, "the Linux guest boots from an initramfs"},
		{[]string{"build", "--format", "iso", "./hello_static"}, `--format: format "iso" is not one ops writes`},
		{[]string{"image", "create", "-t", "ibm", "./hello_static"}, `-t: target "ibm" is not one`},
	} {
		r := e.run(t, e.home, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("ops %s: exit %d, stderr %q; want one line with %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}

// TestE2EUEFIBoot boots a Nanos hello through OVMF: ops run --uefi writes
// the ESP layout and boots it with UEFI firmware on q35.
func TestE2EUEFIBoot(t *testing.T) {
	e := getEnv(t)
	home := nanosHome(t)
	if _, err := qemu.FindOVMF(qemu.OVMFPaths()); err != nil {
		t.Skipf("SKIP: %v", err)
	}
	r := e.run(t, home, "run", "--uefi", "-v", "./hello_static", "-a", "3")
	if r.code != 3 || !strings.Contains(r.stdout, "hello from C, 2 args") {
		t.Fatalf("UEFI boot: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "-bios ") || !strings.Contains(r.stderr, "OVMF") {
		t.Errorf("not booted through OVMF: %s", r.stderr)
	}
	r = e.run(t, home, "run", "--uefi", "--machine", "microvm", "./hello_static")
	if r.code == 0 || !strings.Contains(r.stderr, "--uefi boots through UEFI firmware on a q35 machine") {
		t.Errorf("--uefi --machine microvm: exit %d, %s", r.code, r.stderr)
	}
}
