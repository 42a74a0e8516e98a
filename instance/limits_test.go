package instance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfine lays out fake cgroup hierarchies (a real one's directories
// come with their control files; these are made beforehand) and checks
// what confine writes into them.
func TestConfine(t *testing.T) {
	l := limitsFor(512, 2)
	if l.MemoryBytes != 512<<20+qemuOverhead || l.CPUs != 2 {
		t.Fatalf("limitsFor(512, 2) = %+v", l)
	}
	cases := []struct {
		name  string
		files []string // made empty before
		ctl   string   // cgroup.controllers of the v2 root
		want  map[string]string
		err   string
	}{
		{"v2", []string{"cgroup.subtree_control", "ops/cgroup.subtree_control", "ops/web/memory.max", "ops/web/memory.swap.max", "ops/web/cpu.max", "ops/web/cgroup.procs"},
			"cpuset cpu io memory pids",
			map[string]string{"cgroup.subtree_control": "+memory +cpu", "ops/web/memory.max": "805306368", "ops/web/cpu.max": "200000 100000", "ops/web/cgroup.procs": "42"}, ""},
		{"v1 (v2 without the controllers)", []string{"memory/cgroup.procs", "memory/ops/web/memory.limit_in_bytes", "memory/ops/web/cgroup.procs",
			"cpu/ops/web/cpu.cfs_period_us", "cpu/ops/web/cpu.cfs_quota_us", "cpu/ops/web/cgroup.procs"},
			"hugetlb",
			map[string]string{"memory/ops/web/memory.limit_in_bytes": "805306368", "memory/ops/web/cgroup.procs": "42", "cpu/ops/web/cpu.cfs_quota_us": "200000", "cpu/ops/web/cpu.cfs_period_us": "100000"}, ""},
		{"none", nil, "", nil, "no cgroup hierarchy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range append(tc.files, "cgroup.controllers") {
				p := filepath.Join(root, f)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, nil, 0o644)
			}
			os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte(tc.ctl), 0o644)
			_, err := confine(root, "web", 42, limitsFor(512, 2))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for f, want := range tc.want {
				if b, _ := os.ReadFile(filepath.Join(root, f)); string(b) != want {
					t.Errorf("%s = %q, want %q", f, b, want)
				}
			}
		})
	}
}
