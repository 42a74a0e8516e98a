//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// failingKVM is a folder holding a qemu-system-x86_64 that fails under
// KVM as QEMU does on a host whose KVM cannot run guests, and hands
// anything else to the real QEMU. The folder is open to every user: QEMU
// runs as nobody when ops runs as root.
func failingKVM(t *testing.T) string {
	t.Helper()
	real, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("SKIP: no qemu-system-x86_64 ('make deps')")
	}
	dir, err := os.MkdirTemp("", "ops-fake-kvm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	script := fmt.Sprintf(`#!/bin/sh
case " $* " in
*" -accel kvm "*) echo "qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory" >&2; exit 1;;
esac
exec %s "$@"
`, real)
	if err := os.WriteFile(filepath.Join(dir, "qemu-system-x86_64"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestE2EKVMFallback: with KVM forced (OPS_ACCEL=kvm) and a QEMU that
// fails under it, every way of starting a VM boots again under emulation
// and says so: ops run, an instance's supervisor, compose up's instances
// and compose up --bridged's own machines.
func TestE2EKVMFallback(t *testing.T) {
	e := getEnv(t)
	extra := []string{"OPS_ACCEL=kvm", "PATH=" + failingKVM(t) + ":" + os.Getenv("PATH")}
	const notice = "ops: QEMU failed under KVM (qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory); retrying with software emulation"
	t.Run("run", func(t *testing.T) {
		r := e.runWith(t, e.home, extra, "run", "./hello_static", "--guest", "linux", "-a", "3")
		if r.code != 3 || !strings.Contains(r.stdout, "hello from C, 2 args") || !strings.Contains(r.stderr, notice) {
			t.Fatalf("exit %d, want 3 after the retry notice:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("instance", func(t *testing.T) {
		name := fmt.Sprintf("kvmfb%d", os.Getpid())
		r := e.runWith(t, e.home, extra, "instance", "create", "./hello_static", "--guest", "linux", "--name", name, "-a", "4")
		if r.code != 0 {
			t.Fatalf("create: %s %s", r.stdout, r.stderr)
		}
		t.Cleanup(func() { e.run(t, e.home, "instance", "delete", "-f", name) })
		deadline := time.Now().Add(2 * time.Minute)
		var in instanceJSON
		for time.Now().Before(deadline) {
			if in = listInstances(t, e, e.home)[name]; in.Status == "exited" || in.Status == "failed" {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		logs := e.run(t, e.home, "instance", "logs", name).stdout
		if in.Status != "exited" || in.ExitCode == nil || *in.ExitCode != 4 || !strings.Contains(logs, notice) {
			t.Fatalf("%+v, want exited with 4 after the retry notice; logs:\n%s", in, logs)
		}
	})
	project := func(t *testing.T) string {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"compose.yaml": "name: kvmfb\nservices:\n  a:\n    x-ops: {program: " + e.progs["hello_static"] + "}\n    command: [\"5\"]\n"})
		return dir
	}
	t.Run("compose", func(t *testing.T) {
		r := inDir(e, project(t)).runWith(t, e.home, extra, "compose", "up", "--guest", "linux")
		if r.code != 5 || !strings.Contains(r.stdout+r.stderr, notice) {
			t.Fatalf("exit %d, want 5 after the retry notice:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("compose bridged", func(t *testing.T) {
		ns := netns(t)
		dir := project(t)
		c := exec.Command("ip", "netns", "exec", ns, e.ops, "compose", "up", "--bridged", "-f", filepath.Join(dir, "compose.yaml"), "--guest", "linux")
		c.Env = append(append(os.Environ(), opsHomeEnv(e.home)), extra...)
		out, err := c.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 5 || !strings.Contains(string(out), "[a] "+notice) {
			t.Fatalf("%v, want exit 5 after the retry notice:\n%s", err, out)
		}
	})
}
