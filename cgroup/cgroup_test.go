package cgroup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlace lays out fake cgroup hierarchies (a real one's directories
// come with their control files; these are made beforehand) and checks
// what Place writes into them.
func TestPlace(t *testing.T) {
	q, p := Cores(2)
	l := Limits{MemoryBytes: 805306368, CPUQuota: q, CPUPeriod: p}
	cases := []struct {
		name, rel string
		files     []string // made empty before
		ctl       string   // cgroup.controllers of the v2 root
		want      map[string]string
		err       string
	}{
		{"v2", "ops/web", []string{"cgroup.subtree_control", "ops/cgroup.subtree_control", "ops/web/memory.max", "ops/web/memory.swap.max", "ops/web/cpu.max", "ops/web/cgroup.procs"},
			"cpuset cpu io memory pids",
			map[string]string{"cgroup.subtree_control": "+memory +cpu", "ops/cgroup.subtree_control": "+memory +cpu", "ops/web/memory.max": "805306368", "ops/web/cpu.max": "200000 100000", "ops/web/cgroup.procs": "42"}, ""},
		{"v2, deeper", "a/b/c", []string{"cgroup.subtree_control", "a/cgroup.subtree_control", "a/b/cgroup.subtree_control", "a/b/c/memory.max", "a/b/c/memory.swap.max", "a/b/c/cpu.max", "a/b/c/cgroup.procs"},
			"cpu memory",
			map[string]string{"a/b/cgroup.subtree_control": "+memory +cpu", "a/b/c/cgroup.procs": "42"}, ""},
		{"v1 (v2 without the controllers)", "ops/web", []string{"memory/cgroup.procs", "memory/ops/web/memory.limit_in_bytes", "memory/ops/web/cgroup.procs",
			"cpu/ops/web/cpu.cfs_period_us", "cpu/ops/web/cpu.cfs_quota_us", "cpu/ops/web/cgroup.procs"},
			"hugetlb",
			map[string]string{"memory/ops/web/memory.limit_in_bytes": "805306368", "memory/ops/web/cgroup.procs": "42", "cpu/ops/web/cpu.cfs_quota_us": "200000", "cpu/ops/web/cpu.cfs_period_us": "100000"}, ""},
		{"none", "ops/web", nil, "", nil, "no cgroup hierarchy"},
		{"the root itself", "/", nil, "cpu memory", nil, "not a group below the root"},
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
			_, err := Place(root, tc.rel, 42, l)
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

func TestFromOCI(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"/libpod_parent/libpod-abc", "libpod_parent/libpod-abc", ""},
		{"machine/ctr", "machine/ctr", ""},
		{"system.slice:docker:abc", "system.slice/docker-abc.scope", ""},
		{"kubepods-besteffort-pod12.slice:cri-containerd:abc", "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope", ""},
		{":libpod:abc", "system.slice/libpod-abc.scope", ""},
		{"/", "", "names the root group"},
		{"a:b", "", "want SLICE:PREFIX:NAME"},
	} {
		got, err := FromOCI(tc.in)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("FromOCI(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}
