package instance

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opsdev/ops/qemu"
)

// TestConfine: an instance's QEMU goes into ops/NAME with its guest's
// memory and QEMU's own, and a core per vCPU (package cgroup tests the
// hierarchies themselves).
func TestConfine(t *testing.T) {
	l := limitsFor(512, 2)
	if l.MemoryBytes != 512<<20+qemu.MemoryOverhead || l.CPUQuota != 200000 || l.CPUPeriod != 100000 {
		t.Fatalf("limitsFor(512, 2) = %+v", l)
	}
	root := t.TempDir()
	for _, f := range []string{"memory/cgroup.procs", "memory/ops/web/memory.limit_in_bytes", "memory/ops/web/cgroup.procs",
		"cpu/ops/web/cpu.cfs_period_us", "cpu/ops/web/cpu.cfs_quota_us", "cpu/ops/web/cgroup.procs"} {
		p := filepath.Join(root, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, nil, 0o644)
	}
	if _, err := confine(root, "web", 42, l); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "memory/ops/web/cgroup.procs")); string(b) != "42" {
		t.Fatalf("cgroup.procs = %q", b)
	}
}
