package instance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Limits on one instance's QEMU, enforced by the host's cgroups so that a
// runaway guest cannot starve the others: memory for the guest's RAM and
// QEMU's own needs, and CPU time for as many cores as the guest has vCPUs.

// qemuOverhead is the memory QEMU needs beyond the guest's RAM: its
// translated-code buffer under emulation, device state and buffers.
const qemuOverhead = 256 << 20

// Limits are an instance's caps.
type Limits struct {
	MemoryBytes int64 // 0: none
	CPUs        int   // whole cores of CPU time per period; 0: none
}

// limitsFor is what an instance with memoryMB of guest RAM (0: the
// default, 256) and cpus vCPUs (0: 1) may use.
func limitsFor(memoryMB, cpus int) Limits {
	if memoryMB <= 0 {
		memoryMB = 256
	}
	if cpus <= 0 {
		cpus = 1
	}
	return Limits{MemoryBytes: int64(memoryMB)<<20 + qemuOverhead, CPUs: cpus}
}

// cgroupRoot is where cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

const cfsPeriod = 100000 // µs

// confine puts pid into a cgroup of its own, ops/NAME, with l: in the
// unified (v2) hierarchy when its memory and cpu controllers are there,
// else in the v1 memory and cpu hierarchies. It returns a function that
// removes the cgroups (once pid has exited), or why it could not.
func confine(root, name string, pid int, l Limits) (remove func(), err error) {
	if ctl, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		have := strings.Fields(string(ctl))
		if slices.Contains(have, "memory") && slices.Contains(have, "cpu") {
			return confineV2(root, name, pid, l)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "memory", "cgroup.procs")); err == nil {
		return confineV1(root, name, pid, l)
	}
	return func() {}, errors.New("no cgroup hierarchy with the memory and cpu controllers")
}

// confineV2 uses ROOT/ops/NAME; ROOT/ops holds no process, so it may
// hand the controllers down.
func confineV2(root, name string, pid int, l Limits) (func(), error) {
	parent := filepath.Join(root, "ops")
	dir := filepath.Join(parent, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return func() {}, err
	}
	remove := func() { os.Remove(dir) }
	steps := [][2]string{
		{filepath.Join(root, "cgroup.subtree_control"), "+memory +cpu"},
		{filepath.Join(parent, "cgroup.subtree_control"), "+memory +cpu"},
		{filepath.Join(dir, "memory.max"), strconv.FormatInt(l.MemoryBytes, 10)},
		{filepath.Join(dir, "memory.swap.max"), "0"},
		{filepath.Join(dir, "cpu.max"), fmt.Sprintf("%d %d", l.CPUs*cfsPeriod, cfsPeriod)},
		{filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)},
	}
	for _, s := range steps {
		if err := writeCgroup(s[0], s[1]); err != nil && !strings.HasSuffix(s[0], "memory.swap.max") {
			return remove, err
		}
	}
	return remove, nil
}

// confineV1 uses ROOT/memory/ops/NAME and ROOT/cpu/ops/NAME.
func confineV1(root, name string, pid int, l Limits) (func(), error) {
	mem := filepath.Join(root, "memory", "ops", name)
	cpu := filepath.Join(root, "cpu", "ops", name)
	remove := func() {
		os.Remove(mem)
		os.Remove(cpu)
	}
	for _, d := range []string{mem, cpu} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return remove, err
		}
	}
	steps := [][2]string{
		{filepath.Join(mem, "memory.limit_in_bytes"), strconv.FormatInt(l.MemoryBytes, 10)},
		{filepath.Join(mem, "cgroup.procs"), strconv.Itoa(pid)},
		{filepath.Join(cpu, "cpu.cfs_period_us"), strconv.Itoa(cfsPeriod)},
		{filepath.Join(cpu, "cpu.cfs_quota_us"), strconv.Itoa(l.CPUs * cfsPeriod)},
		{filepath.Join(cpu, "cgroup.procs"), strconv.Itoa(pid)},
	}
	for _, s := range steps {
		if err := writeCgroup(s[0], s[1]); err != nil {
			return remove, err
		}
	}
	return remove, nil
}

// writeCgroup writes one cgroup control file (not a regular file: no
// temporary file and rename here).
func writeCgroup(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
