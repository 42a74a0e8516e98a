// Package cgroup places a process in a control group with memory and CPU
// caps, in the unified (v2) hierarchy when its memory and cpu controllers
// are there, else in the v1 memory and cpu hierarchies.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Root is where cgroup file systems are mounted.
const Root = "/sys/fs/cgroup"

// Limits are a group's caps.
type Limits struct {
	MemoryBytes int64 // 0: none
	// CPUQuota of CPU time in each CPUPeriod (µs); 0: none. Two cores are
	// a quota of twice the period.
	CPUQuota, CPUPeriod int64
}

// Cores is a quota of n whole cores.
func Cores(n int) (quota, period int64) { return int64(n) * 100000, 100000 }

// Place puts pid into the group at rel (a relative path such as
// "ops/web") below root, made if need be, with l. It returns a function
// that removes the groups it made (once pid has exited), or why it could
// not place pid.
func Place(root, rel string, pid int, l Limits) (remove func(), err error) {
	rel = path.Clean("/" + rel)[1:]
	if rel == "" {
		return func() {}, fmt.Errorf("cgroup %q: not a group below the root", rel)
	}
	if ctl, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		have := strings.Fields(string(ctl))
		if slices.Contains(have, "memory") && slices.Contains(have, "cpu") {
			return placeV2(root, rel, pid, l)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "memory", "cgroup.procs")); err == nil {
		return placeV1(root, rel, pid, l)
	}
	return func() {}, errors.New("no cgroup hierarchy with the memory and cpu controllers")
}

// placeV2 hands the memory and cpu controllers down from root to rel's
// parent (a group that hands them down holds no process), then caps rel.
func placeV2(root, rel string, pid int, l Limits) (func(), error) {
	dir := filepath.Join(root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return func() {}, err
	}
	remove := func() { os.Remove(dir) }
	var steps [][2]string
	for p := root; p != dir; {
		steps = append(steps, [2]string{filepath.Join(p, "cgroup.subtree_control"), "+memory +cpu"})
		next, _, _ := strings.Cut(strings.TrimPrefix(dir, p+"/"), "/")
		p = filepath.Join(p, next)
	}
	if l.MemoryBytes > 0 {
		steps = append(steps, [2]string{filepath.Join(dir, "memory.max"), strconv.FormatInt(l.MemoryBytes, 10)},
			[2]string{filepath.Join(dir, "memory.swap.max"), "0"})
	}
	if l.CPUQuota > 0 {
		steps = append(steps, [2]string{filepath.Join(dir, "cpu.max"), fmt.Sprintf("%d %d", l.CPUQuota, l.CPUPeriod)})
	}
	steps = append(steps, [2]string{filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)})
	for _, s := range steps {
		if err := write(s[0], s[1]); err != nil && !strings.HasSuffix(s[0], "memory.swap.max") {
			return remove, err
		}
	}
	return remove, nil
}

// placeV1 uses ROOT/memory/REL and ROOT/cpu/REL.
func placeV1(root, rel string, pid int, l Limits) (func(), error) {
	mem := filepath.Join(root, "memory", rel)
	cpu := filepath.Join(root, "cpu", rel)
	remove := func() {
		os.Remove(mem)
		os.Remove(cpu)
	}
	for _, d := range []string{mem, cpu} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return remove, err
		}
	}
	var steps [][2]string
	if l.MemoryBytes > 0 {
		steps = append(steps, [2]string{filepath.Join(mem, "memory.limit_in_bytes"), strconv.FormatInt(l.MemoryBytes, 10)})
	}
	steps = append(steps, [2]string{filepath.Join(mem, "cgroup.procs"), strconv.Itoa(pid)})
	if l.CPUQuota > 0 {
		steps = append(steps, [2]string{filepath.Join(cpu, "cpu.cfs_period_us"), strconv.FormatInt(l.CPUPeriod, 10)},
			[2]string{filepath.Join(cpu, "cpu.cfs_quota_us"), strconv.FormatInt(l.CPUQuota, 10)})
	}
	steps = append(steps, [2]string{filepath.Join(cpu, "cgroup.procs"), strconv.Itoa(pid)})
	for _, s := range steps {
		if err := write(s[0], s[1]); err != nil {
			return remove, err
		}
	}
	return remove, nil
}

// write writes one cgroup control file (not a regular file: no temporary
// file and rename here).
func write(p, value string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// FromOCI is the group an OCI runtime spec's cgroupsPath names, relative
// to the root: a path as it is ("/machine/ctr", cgroupfs), or systemd's
// "SLICE:PREFIX:NAME", the scope PREFIX-NAME.scope in SLICE, whose
// dashes nest it ("kubepods-besteffort.slice" is inside
// "kubepods.slice").
func FromOCI(cgroupsPath string) (string, error) {
	slice, rest, systemd := strings.Cut(cgroupsPath, ":")
	if !systemd {
		rel := path.Clean("/" + cgroupsPath)[1:]
		if rel == "" {
			return "", fmt.Errorf("cgroupsPath %q names the root group", cgroupsPath)
		}
		return rel, nil
	}
	prefix, name, ok := strings.Cut(rest, ":")
	if !ok || name == "" || strings.Contains(name, "/") || strings.Contains(slice, "/") {
		return "", fmt.Errorf("cgroupsPath %q: want SLICE:PREFIX:NAME (systemd) or a path", cgroupsPath)
	}
	if slice == "" {
		slice = "system.slice"
	}
	var parts []string
	if base, ok := strings.CutSuffix(slice, ".slice"); ok && base != "-" {
		words := strings.Split(base, "-")
		for i := range words {
			parts = append(parts, strings.Join(words[:i+1], "-")+".slice")
		}
	} else {
		parts = append(parts, slice)
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		if prefix != "" {
			unit = prefix + "-" + name
		}
		unit += ".scope"
	}
	return path.Join(append(parts, unit)...), nil
}
