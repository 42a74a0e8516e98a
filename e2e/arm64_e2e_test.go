//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// arm64 end to end, on any host: programs cross-built here (Debian's
// aarch64 cross compiler and libc, Go with GOARCH=arm64) boot under
// software emulation of QEMU's virt machine.

var (
	armOnce sync.Once
	armDir  string
	armErr  error
)

// arm64Progs builds the arm64 test programs once: the C hello, static and
// dynamic (its libraries from Debian's cross root, /usr/aarch64-linux-gnu),
// and the Go HTTP server. It skips, saying what to install, where the
// cross tools or QEMU's arm64 emulator are missing.
func arm64Progs(t testing.TB) string {
	t.Helper()
	e := getEnv(t)
	for _, tool := range []string{"aarch64-linux-gnu-gcc", "qemu-system-aarch64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: arm64: %s is not installed ('make test-deps' installs gcc-aarch64-linux-gnu, libc6-arm64-cross and qemu-system-arm)", tool)
		}
	}
	armOnce.Do(func() {
		armDir = filepath.Join(e.dir, "arm64")
		if armErr = os.MkdirAll(armDir, 0o755); armErr != nil {
			return
		}
		if armErr = run(e.dir, "aarch64-linux-gnu-gcc", "-O2", "-static", "-o", "arm64/hello_static", "hello.c"); armErr != nil {
			return
		}
		if armErr = run(e.dir, "aarch64-linux-gnu-gcc", "-O2", "-o", "arm64/hello_dynamic", "hello.c"); armErr != nil {
			return
		}
		c := exec.Command("go", "build", "-o", filepath.Join(armDir, "goserver"), ".")
		c.Dir = filepath.Join(e.dir, "server")
		c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=arm64")
		if out, err := c.CombinedOutput(); err != nil {
			armErr = fmt.Errorf("GOARCH=arm64 go build: %v\n%s", err, out)
		}
	})
	if armErr != nil {
		t.Fatal(armErr)
	}
	return armDir
}

// nanosHomeARM64 links the arm64 release of the Nanos version the tests
// use (<version>-arm, beside it in the same ops home) into a fresh ops
// home, or skips the test saying why.
func nanosHomeARM64(t testing.TB) string {
	t.Helper()
	src := nanosSource()
	v, _ := os.ReadFile(filepath.Join(src, "latest.txt"))
	ver := strings.TrimSpace(string(v))
	if _, err := os.Stat(filepath.Join(src, ver+"-arm", "kernel.img")); ver == "" || err != nil {
		t.Skipf("SKIP: no arm64 Nanos release installed in %s (ops update --arch arm64, or --from a nanos-release-linux-VERSION-virt.tar.gz)", src)
	}
	home := t.TempDir()
	if err := os.Symlink(filepath.Join(src, ver+"-arm"), filepath.Join(home, ver+"-arm")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "latest.txt"), []byte(ver+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return home
}

// linuxHomeARM64 links the arm64 kernel package that make test-deps
// unpacks (into <ops home>/kernels/arm64 of the home the Nanos release
// comes from) into a fresh ops home, or skips the test saying why.
func linuxHomeARM64(t testing.TB) string {
	t.Helper()
	src := filepath.Join(nanosSource(), "kernels", "arm64")
	if k, _ := filepath.Glob(filepath.Join(src, "boot", "vmlinuz-*")); len(k) == 0 {
		t.Skipf("SKIP: no arm64 Linux kernel unpacked in %s (make arm64-kernel, which make test-deps runs)", src)
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "kernels"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(src, filepath.Join(home, "kernels", "arm64")); err != nil {
		t.Fatal(err)
	}
	return home
}

// forEachGuestARM64 runs f for each guest on arm64, in the folder of the
// arm64 programs.
func forEachGuestARM64(t *testing.T, f func(t *testing.T, guest, home, dir string)) {
	dir := arm64Progs(t)
	t.Run("linux", func(t *testing.T) { f(t, "linux", linuxHomeARM64(t), dir) })
	t.Run("nanos", func(t *testing.T) { f(t, "nanos", nanosHomeARM64(t), dir) })
}

// TestE2EARM64Hello: static and dynamic arm64 programs print and return
// their exit codes, the code carried without an exit device.
func TestE2EARM64Hello(t *testing.T) {
	e := getEnv(t)
	forEachGuestARM64(t, func(t *testing.T, guest, home, dir string) {
		for _, tc := range []struct {
			prog string
			args []string
			code int
			out  string
		}{
			{"hello_static", nil, 0, "hello from C, 1 args\n"},
			{"hello_static", []string{"-a", "3"}, 3, "hello from C, 2 args\n"},
			{"hello_dynamic", []string{"-a", "7"}, 7, "hello from C, 2 args\n"},
			{"hello_dynamic", nil, 0, "hello from C, 1 args\n"},
		} {
			args := append([]string{"run", "--arch", "arm64", "--guest", guest, filepath.Join(dir, tc.prog)}, tc.args...)
			r := e.run(t, home, args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.out) {
				t.Fatalf("%s %v: exit %d, want %d\nstdout: %q\nstderr: %s", tc.prog, tc.args, r.code, tc.code, r.stdout, r.stderr)
			}
		}
	})
}

// TestE2EARM64HTTP: an arm64 Go server answers through a port forward.
func TestE2EARM64HTTP(t *testing.T) {
	e := getEnv(t)
	forEachGuestARM64(t, func(t *testing.T, guest, home, dir string) {
		port := freePorts(t, 1)
		stop := startServer(t, e, home, "run", "--arch", "arm64", "--guest", guest, filepath.Join(dir, "goserver"), "-a", fmt.Sprint(port), "-p", fmt.Sprint(port))
		body, err := getUntil(fmt.Sprintf("http://127.0.0.1:%d/", port), time.Now().Add(90*time.Second))
		if err != nil || !strings.Contains(body, fmt.Sprintf("hello over http on %d", port)) {
			code, out := stop()
			t.Fatalf("no HTTP answer: %v %q (ops exit %d)\n%s", err, body, code, out)
		}
		if code, out := stop(); code != 130 {
			t.Fatalf("ops exit %d after SIGINT, want 130\n%s", code, out)
		}
	})
}

// TestE2EArchMismatch: a program of the other architecture is refused
// before anything is built, in one line naming both; no release or
// kernel is needed to say so.
func TestE2EArchMismatch(t *testing.T) {
	e := getEnv(t)
	dir := arm64Progs(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build", filepath.Join(dir, "hello_static")}, "is an arm64 (aarch64) program, but the image is for amd64 (x86_64): build with --arch arm64"},
		{[]string{"run", "--arch", "arm64", "./hello_static"}, "is an amd64 (x86_64) program, but the image is for arm64 (aarch64): build with --arch amd64"},
		{[]string{"build", "--arch", "aarch64", "./hello_dynamic"}, "is an amd64 (x86_64) program, but the image is for arm64 (aarch64)"},
		{[]string{"build", "--arch", "sparc", "./hello_static"}, `"sparc" is not an architecture ops builds for`},
	} {
		r := e.run(t, e.home, append(tc.args, "-i", "arch-mismatch")...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || len(lines) != 1 {
			t.Fatalf("ops %v: exit %d, want one line %q\nstderr: %s", tc.args, r.code, tc.want, r.stderr)
		}
		if left, _ := filepath.Glob(filepath.Join(e.home, "images", "*arch-mismatch*")); len(left) > 0 {
			t.Fatalf("ops %v left %v", tc.args, left)
		}
	}
}

// TestE2EARM64RedisVolume: Debian's arm64 redis-server, with its libraries
// from an arm64 root folder (make test-deps unpacks it), keeps what it was
// told on a volume across a restart of its instance.
func TestE2EARM64RedisVolume(t *testing.T) {
	e := getEnv(t)
	root := filepath.Join(repoRoot(), ".work", "arm64-root")
	prog := filepath.Join(root, "usr", "bin", "redis-server")
	if _, err := os.Stat(prog); err != nil {
		t.Skipf("SKIP: no arm64 redis-server in %s (make test-deps unpacks Debian's arm64 packages there)", root)
	}
	forEachGuestARM64(t, func(t *testing.T, guest, home, dir string) {
		home = writableHome(t, home)
		port := freePorts(t, 1)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if r := e.run(t, home, "volume", "create", "rdata", "-s", "64M", "--guest", guest); r.code != 0 {
			t.Fatalf("volume create: %s", r.stderr)
		}
		// Redis 7.0 refuses to start on arm64 kernels it cannot test for a
		// copy-on-write bug of old Linux kernels, unless told to go on.
		r := e.run(t, home, "instance", "create", prog, "--arch", "arm64", "-r", root, "--guest", guest, "--name", "cache",
			"-p", fmt.Sprintf("%d:6379", port), "--mounts", "rdata:/data",
			"-a", "--dir", "-a", "/data", "-a", "--appendonly", "-a", "yes", "-a", "--appendfsync", "-a", "always",
			"-a", "--protected-mode", "-a", "no", "-a", "--ignore-warnings", "-a", "ARM64-COW-BUG")
		if r.code != 0 {
			t.Fatalf("instance create: %d %s %s", r.code, r.stdout, r.stderr)
		}
		t.Cleanup(func() { e.run(t, home, "instance", "delete", "-f", "cache") })
		if got, err := redisCmd(addr, "SET k kept\r\n", 120*time.Second); got != "+OK\r\n" {
			t.Fatalf("SET: %q %v\n%s", got, err, e.run(t, home, "instance", "logs", "cache").stdout)
		}
		if r := e.run(t, home, "instance", "restart", "cache"); r.code != 0 {
			t.Fatalf("restart: %s", r.stderr)
		}
		if got, _ := redisCmd(addr, "GET k\r\n", 120*time.Second); got != "$4\r\nkept\r\n" {
			t.Fatalf("after restart: %q\n%s", got, e.run(t, home, "instance", "logs", "cache").stdout)
		}
	})
}

// TestE2EARM64MultiPlatformImage: from a container image index holding an
// amd64 and an arm64 image (each the C hello of its architecture), --arch
// arm64 makes a package of the arm64 one, which runs.
func TestE2EARM64MultiPlatformImage(t *testing.T) {
	e := getEnv(t)
	dir := arm64Progs(t)
	image := func(prog, architecture string) v1.Image {
		b, err := os.ReadFile(prog)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(empty.Image, layer(t, []tarEnt{{name: "hello", body: b, mode: 0o755}}))
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", architecture
		cf.Config.Cmd = []string{"/hello", "5"}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		return img
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: image(e.progs["hello_static"], "amd64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: image(filepath.Join(dir, "hello_static"), "arm64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	host := localRegistry(t)
	ref, err := name.ParseReference(host + "/tests/multi:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	forEachGuestARM64(t, func(t *testing.T, guest, home, _ string) {
		home = writableHome(t, home)
		if r := e.run(t, home, "pkg", "from-image", ref.String(), "--arch", "arm64", "--name", "multi", "--version", "1"); r.code != 0 {
			t.Fatalf("from-image: %d %s %s", r.code, r.stdout, r.stderr)
		}
		r := e.run(t, home, "pkg", "load", "-l", "multi:1", "--arch", "arm64", "--guest", guest)
		if r.code != 5 || !strings.Contains(r.stdout, "hello from C, 2 args") {
			t.Fatalf("load: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestE2EARM64UEFI: an arm64 Nanos disk with an EFI System Partition
// (bootaa64.efi) boots through AAVMF and returns the program's exit code.
func TestE2EARM64UEFI(t *testing.T) {
	e := getEnv(t)
	dir := arm64Progs(t)
	home := nanosHomeARM64(t)
	if _, err := os.Stat("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"); err != nil {
		t.Skip("SKIP: no arm64 UEFI firmware ('make test-deps' installs qemu-efi-aarch64)")
	}
	r := e.run(t, home, "run", "--arch", "arm64", "--uefi", filepath.Join(dir, "hello_static"), "-a", "4")
	if r.code != 4 || !strings.Contains(r.stdout, "hello from C, 2 args") {
		t.Fatalf("exit %d, want 4\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}
