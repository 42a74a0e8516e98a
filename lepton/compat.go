package lepton

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/qemu"
)

// TraceFlags are the manifest options --trace sets, as nanovms/ops sets
// them: syscall tracing (read by the strace klib), page faults and futexes.
func TraceFlags() []string { return []string{"trace", "debugsyscalls", "fault", "futex_trace"} }

// straceOptions are the manifest options only the strace klib reads: an
// image that sets one carries the klib.
func straceOptions() []string { return []string{"trace", "debugsyscalls", "syscall_summary"} }

var debugFlagRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_]*$`) })

// SetConsoles routes the Nanos kernel's console (--consoles), with the
// net console's address, as nanovms/ops writes them into the manifest.
func (c *Config) SetConsoles(consoles []string, netPort, netIP string) {
	if c.ManifestPassthrough == nil {
		c.ManifestPassthrough = map[string]any{}
	}
	v := make([]any, len(consoles))
	for i, s := range consoles {
		v[i] = s
	}
	c.ManifestPassthrough["consoles"] = v
	c.ManifestPassthrough["netconsole_port"] = netPort
	c.ManifestPassthrough["netconsole_ip"] = netIP
}

// Target is the architecture c builds for: Arch, else this machine's.
func (c *Config) Target() (arch.Arch, error) {
	a, err := arch.Parse(c.Arch)
	if err != nil {
		return "", fmt.Errorf("Arch (--arch): %w", err)
	}
	return a, nil
}

// CheckNightly refuses NightlyBuild (-n): nightly kernels come from the
// Nanos nightly server, which ops does not download from.
func (c *Config) CheckNightly() error {
	if !c.NightlyBuild {
		return nil
	}
	return errors.New("-n/NightlyBuild: nightly Nanos builds are downloaded from the Nanos nightly server, which this ops does not use; " +
		"install a kernel you built or downloaded with 'ops update --from DIR|FILE --version nightly' and pass --nanos-version nightly")
}

// checkDebugFlags checks Debugflags names: each becomes a manifest key.
func (c *Config) checkDebugFlags() error {
	for _, d := range c.Debugflags {
		if !debugFlagRE().MatchString(d) {
			return fmt.Errorf("Debugflags: %q is not a manifest option name (lower case letters, digits, _)", d)
		}
	}
	for _, s := range c.NoTrace {
		if !debugFlagRE().MatchString(s) {
			return fmt.Errorf("NoTrace: %q is not a syscall name", s)
		}
	}
	return nil
}

// ManifestOptions are the root manifest options the config asks for beyond
// the program: Debugflags (each set to "t"), NoTrace (a list),
// RebootOnExit, noaslr for a debugger (RunConfig.Debug), then
// ManifestPassthrough, which wins.
func (c *Config) ManifestOptions() map[string]any {
	m := map[string]any{}
	for _, d := range c.Debugflags {
		m[d] = "t"
	}
	if len(c.NoTrace) > 0 {
		v := make([]any, len(c.NoTrace))
		for i, s := range c.NoTrace {
			v[i] = s
		}
		m["notrace"] = v
	}
	if c.RebootOnExit {
		m["reboot_on_exit"] = "t"
	}
	if c.RunConfig.Debug {
		m["noaslr"] = "t"
	}
	for k, v := range c.ManifestPassthrough {
		m[k] = v
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// NanosKlibs is Klibs, plus strace when an option only it reads is set.
func (c *Config) NanosKlibs() []string {
	k := c.Klibs
	needs := len(c.NoTrace) > 0
	for _, d := range c.Debugflags {
		needs = needs || slices.Contains(straceOptions(), d)
	}
	if needs && !slices.Contains(k, "strace") {
		k = append(slices.Clone(k), "strace")
	}
	return k
}

// nanosOnly names the options set in c that only the Nanos kernel reads,
// for the Linux guest's error.
func (c *Config) nanosOnly() []string {
	var out []string
	if len(c.Debugflags) > 0 {
		out = append(out, "Debugflags (--trace, --syscall-summary, --missing-files)")
	}
	if len(c.NoTrace) > 0 {
		out = append(out, "NoTrace (--no-trace)")
	}
	if c.RebootOnExit {
		out = append(out, "RebootOnExit")
	}
	if _, ok := c.ManifestPassthrough["consoles"]; ok {
		out = append(out, "--consoles")
	}
	return out
}

// ignoredKey is a nanovms/ops config key this ops reads and does not act
// on: set tells whether a config sets it.
type ignoredKey struct {
	name string
	set  func(c *Config) bool
}

// ignoredKeys are the nanovms/ops keys that mean nothing on a local VM
// here (clouds, build folders, GPUs, ...). Setting one gets a warning
// naming it, never silence.
var ignoredKeys = []ignoredKey{
	{"BuildDir", func(c *Config) bool { return c.BuildDir != "" }},
	{"CloudConfig", func(c *Config) bool { return len(c.CloudConfig) > 0 && string(c.CloudConfig) != "null" }},
	{"TargetConfig", func(c *Config) bool { return len(c.TargetConfig) > 0 }},
	{"Home", func(c *Config) bool { return c.Home != "" }},
	{"ProgramPath", func(c *Config) bool { return c.ProgramPath != "" }},
	{"TFSv4", func(c *Config) bool { return c.TFSv4 }},
	{"VolumesDir", func(c *Config) bool { return c.VolumesDir != "" }},
	{"RunConfig.AtExit", func(c *Config) bool { return c.RunConfig.AtExit != "" }},
	{"RunConfig.CanIPForward", func(c *Config) bool { return c.RunConfig.CanIPForward }},
	{"RunConfig.GPUs", func(c *Config) bool { return c.RunConfig.GPUs != 0 }},
	{"RunConfig.GPUType", func(c *Config) bool { return c.RunConfig.GPUType != "" }},
	{"RunConfig.IPv6Address", func(c *Config) bool { return c.RunConfig.IPv6Address != "" }},
	{"RunConfig.InstanceGroup", func(c *Config) bool { return c.RunConfig.InstanceGroup != "" }},
	{"RunConfig.BackgroundDetach", func(c *Config) bool { return c.RunConfig.BackgroundDetach }},
	{"RunConfig.Kernel", func(c *Config) bool { return c.RunConfig.Kernel != "" }},
	{"RunConfig.Vga", func(c *Config) bool { return c.RunConfig.Vga }},
	{"RunConfig.VirtfsShares", func(c *Config) bool { return len(c.RunConfig.VirtfsShares) > 0 }},
	{"RunConfig.AttachVolumeOnInstanceCreate", func(c *Config) bool { return c.RunConfig.AttachVolumeOnInstanceCreate }},
	{"RunConfig.Nics", func(c *Config) bool { return len(c.RunConfig.Nics) > 0 && string(c.RunConfig.Nics) != "null" }},
	{"RunConfig.JSON", func(c *Config) bool { return c.RunConfig.JSON }},
	{"RunConfig.VolumeSizeInGb", func(c *Config) bool { return c.RunConfig.VolumeSizeInGb != 0 }},
	{"RunConfig.ThreadsPerCore", func(c *Config) bool { return c.RunConfig.ThreadsPerCore != 0 }},
	{"RunConfig.Mgmt (without QMP)", func(c *Config) bool { return c.RunConfig.Mgmt != "" && !c.RunConfig.QMP }},
	{"Version", func(c *Config) bool { return c.Version != "" }},
	{"Language", func(c *Config) bool { return c.Language != "" }},
	{"Description", func(c *Config) bool { return c.Description != "" }},
}

// ignored names the keys c sets that this ops does not act on, sorted.
func (c *Config) ignored() []string {
	var out []string
	for _, k := range ignoredKeys {
		if k.set(c) {
			out = append(out, k.name)
		}
	}
	sort.Strings(out)
	return out
}

// IgnoredWarning is the one line that names them, or "".
func (c *Config) IgnoredWarning() string {
	ig := c.ignored()
	if len(ig) == 0 {
		return ""
	}
	return "ops: warning: ignored here: " + strings.Join(ig, ", ") + " (nanovms/ops keys for clouds and instances; see the README's differences table)"
}

// DefaultGdbPort is where -d's gdb stub listens unless GdbPort says.
const DefaultGdbPort = 1234

// DebugVM sets what the run config asks of QEMU for debugging and
// restarts: the gdb stub (GdbPort; Debug also stops the CPU until a
// debugger continues it), the QMP monitor on 127.0.0.1:Mgmt, and no
// -no-reboot when Nanos is to restart on exit (RebootOnExit is in the
// image's manifest; QEMU must let the reset through).
func (rc RunConfig) DebugVM(vm *qemu.VM) {
	vm.GdbPort = rc.GdbPort
	if rc.Debug {
		vm.WaitDebugger = true
		if vm.GdbPort == 0 {
			vm.GdbPort = DefaultGdbPort
		}
	}
	if rc.QMP && rc.Mgmt != "" {
		vm.QMP = "tcp:127.0.0.1:" + rc.Mgmt
	}
	vm.Reboot = rc.Reboot
}
