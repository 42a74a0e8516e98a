package ociruntime

import (
	"strconv"

	"github.com/opsdev/ops/cgroup"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
)

// minGuestMB is the least memory a guest is given when the container's
// limit leaves little beside QEMU's own.
const minGuestMB = 64

// limits are the container's cgroup (relative to the cgroup root, "" for
// none) and its caps, which QEMU is placed under, and the guest's memory
// and vCPUs they leave: the memory limit less QEMU's own need (at least
// minGuestMB), a vCPU per whole core of the CPU quota (at least one).
func limits(spec *Spec) (rel string, l cgroup.Limits, memoryMB, cpus int, err error) {
	if spec.Linux == nil {
		return "", l, 0, 0, nil
	}
	if spec.Linux.CgroupsPath != "" {
		if rel, err = cgroup.FromOCI(spec.Linux.CgroupsPath); err != nil {
			return "", l, 0, 0, err
		}
	}
	res := spec.Linux.Resources
	if res == nil {
		return rel, l, 0, 0, nil
	}
	if res.Memory != nil && res.Memory.Limit != nil && *res.Memory.Limit > 0 {
		l.MemoryBytes = *res.Memory.Limit
		memoryMB = max(int((l.MemoryBytes-qemu.MemoryOverhead)>>20), minGuestMB)
	}
	if res.CPU != nil && res.CPU.Quota != nil && *res.CPU.Quota > 0 {
		l.CPUQuota, l.CPUPeriod = *res.CPU.Quota, 100000
		if res.CPU.Period != nil && *res.CPU.Period > 0 {
			l.CPUPeriod = int64(*res.CPU.Period)
		}
		cpus = max(int(l.CPUQuota/l.CPUPeriod), 1)
	}
	return rel, l, memoryMB, cpus, nil
}

// sizeVM gives the guest the memory and vCPUs the container's limits
// leave it.
func sizeVM(c *lepton.Config, memoryMB, cpus int) {
	if memoryMB > 0 {
		c.RunConfig.Memory = strconv.Itoa(memoryMB) + "M"
	}
	if cpus > 0 {
		c.RunConfig.CPUs = cpus
	}
}
