package instance

import (
	"github.com/opsdev/ops/cgroup"
	"github.com/opsdev/ops/qemu"
)

// Limits on one instance's QEMU, enforced by the host's cgroups so that a
// runaway guest cannot starve the others: memory for the guest's RAM and
// QEMU's own needs, and CPU time for as many cores as the guest has vCPUs.

// limitsFor is what an instance with memoryMB of guest RAM (0: the
// default, 256) and cpus vCPUs (0: 1) may use.
func limitsFor(memoryMB, cpus int) cgroup.Limits {
	if memoryMB <= 0 {
		memoryMB = 256
	}
	if cpus <= 0 {
		cpus = 1
	}
	q, p := cgroup.Cores(cpus)
	return cgroup.Limits{MemoryBytes: int64(memoryMB)<<20 + qemu.MemoryOverhead, CPUQuota: q, CPUPeriod: p}
}

// confine puts an instance's QEMU into a cgroup of its own, ops/NAME.
func confine(root, name string, pid int, l cgroup.Limits) (remove func(), err error) {
	return cgroup.Place(root, "ops/"+name, pid, l)
}
