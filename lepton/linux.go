package lepton

import (
	"fmt"
	"path"
	"strings"

	"github.com/opsdev/ops/guestinit"
	"github.com/opsdev/ops/linuxkernel"
)

// Initramfs paths of ops's own files, out of the program's way.
const (
	initPath     = "/.ops/init"
	manifestPath = "/.ops/manifest.json"
	modulesDir   = "/.ops/modules"
)

// skippedInitcalls are the kernel's boot-time set-up functions the Linux
// guest skips (initcall_blacklist; a name the kernel does not have is
// ignored). All three prepare function tracing and trace events, which a
// single-program guest has no use for: a pass over every traceable
// function's symbol (~40k lookups), the rewrite of enum names in every
// trace event's format, and the tracefs files of every event. Without them
// the guest reaches its program ~0.13 s sooner under emulation (paired
// runs: 37 of 40 faster for the first two, 34 of 40 for the third on top);
// /sys/kernel/tracing then has no event files, and that is all.
const skippedInitcalls = "ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs"

// linuxCommandLine is the guest kernel's command line. tscKHz, when known
// (software emulation runs the guest's TSC at the host's rate), spares the
// kernel calibrating against the PIT, which fails now and then under
// emulation and leaves the guest without a clock.
//
// The rest shortens the boot under emulation, where the kernel's own
// housekeeping dominates: cryptomgr.notests skips the crypto self-tests
// (~0.3 s), and noreplace-smp keeps the kernel from rewriting every lock
// prefix when it finds one CPU (thousands of text pokes, each a page-table
// switch: ~0.1 s). skippedInitcalls leaves out the kernel's tracing set-up.
func linuxCommandLine(debug bool, tscKHz int) string {
	s := "console=ttyS0 rdinit=" + initPath + " rootfstype=ramfs panic=-1 reboot=t 8250.nr_uarts=1 tsc=reliable no_timer_check cryptomgr.notests noreplace-smp" +
		" initcall_blacklist=" + skippedInitcalls
	if tscKHz > 0 {
		s += fmt.Sprintf(" tsc_early_khz=%d", tscKHz)
	}
	if debug {
		return s + " ops.debug=1"
	}
	return s + " quiet loglevel=1"
}

// initManifest turns a plan into what the guest init reads.
func initManifest(p *Plan, k *linuxkernel.Kernel, debug bool) guestinit.Manifest {
	m := guestinit.Manifest{
		Program: p.Program,
		Args:    p.Args,
		Cwd:     p.Cwd,
		Debug:   debug,
		Net: guestinit.Net{
			Address: "10.0.2.15/24",
			Gateway: "10.0.2.2",
			DNS:     []string{"10.0.2.3"},
		},
	}
	for _, e := range p.Env {
		m.Env = append(m.Env, e.Name+"="+e.Value)
	}
	if p.Network.IP != "" {
		m.Net.Address = p.Network.IP + "/" + maskBits(p.Network.Netmask)
		m.Net.Gateway = p.Network.Gateway
	} else if p.Network.DHCP {
		m.Net = guestinit.Net{DHCP: true}
	}
	if len(p.Network.NameServers) > 0 {
		m.Net.DNS = p.Network.NameServers
	}
	for i, mod := range k.Modules {
		m.Modules = append(m.Modules, fmt.Sprintf("%s/%02d-%s", modulesDir, i, path.Base(mod)))
	}
	for i, mod := range k.LateModules {
		m.LateModules = append(m.LateModules, fmt.Sprintf("%s/late-%02d-%s", modulesDir, i, path.Base(mod)))
	}
	for _, name := range sortedKeys(p.Mounts) {
		mp, ro := strings.CutSuffix(p.Mounts[name], ":ro")
		m.Mounts = append(m.Mounts, guestinit.Mount{Label: name, Path: mp, ReadOnly: ro})
	}
	return m
}

func maskBits(mask string) string {
	if mask == "" {
		return "24"
	}
	var a, b, c, d uint32
	if _, err := fmt.Sscanf(mask, "%d.%d.%d.%d", &a, &b, &c, &d); err != nil {
		return "24"
	}
	v := a<<24 | b<<16 | c<<8 | d
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	return fmt.Sprint(n)
}
