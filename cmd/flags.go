package cmd

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
	"github.com/spf13/pflag"
)

// buildFlags are the flags of every command that builds an image. Their
// names, shorthands and meanings are nanovms/ops's, so scripts written for
// it run unchanged.
type buildFlags struct {
	config       string
	args         []string
	envs         []string
	imageName    string
	output       string
	nanosVersion string
	guest        string
	targetRoot   string
	verbose      bool
	uefi         bool
	mounts       []string
	pkg          string // image create --package
	pkgLocal     bool   // image create -l
	argsNoCopy   bool
	ip, ipAddr   string
	gateway      string
	netmask      string
	consoles     []string
	netconsPort  string
	netconsIP    string
	nightly      bool
	arch         string
	nanosDebug
}

func (f *buildFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.config, "config", "c", "", "config.json to read ($VAR in it is expanded when ops_render_config=true)")
	stringArrayVarP(fs, &f.args, "args", "a", "program argument (repeatable); replaces the config's Args")
	stringArrayVarP(fs, &f.envs, "envs", "e", "environment variable K=V (repeatable)")
	fs.StringVarP(&f.imageName, "imagename", "i", "", "image name (default: the program's file name)")
	fs.StringVarP(&f.output, "output", "o", "", "image path (default: <ops home>/images/<name>)")
	fs.StringVar(&f.nanosVersion, "nanos-version", "", "installed Nanos release to use (default: latest.txt)")
	fs.StringVar(&f.guest, "guest", "", "guest kernel: nanos or linux (default: nanos when a release is installed, else linux)")
	fs.StringVarP(&f.targetRoot, "target-root", "r", "", "find shared libraries in this root folder instead of /")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "say more, including the QEMU command line")
	stringArrayVarP(fs, &f.mounts, "mounts", "", "mount a volume: VOLUME:/path[:ro] (repeatable; ops volume create makes one)")
	fs.BoolVar(&f.uefi, "uefi", false, "Nanos: a disk UEFI firmware boots too (an EFI System Partition); ops run boots it with OVMF on q35")
	fs.BoolVar(&f.argsNoCopy, "disable-args-copy", false, "packages: do not copy the first argument (the script) from the current folder")
	fs.StringVar(&f.ip, "ip", "", "static guest IP address (as --ip-address)")
	fs.StringVar(&f.ipAddr, "ip-address", "", "static guest IP address")
	fs.StringVar(&f.gateway, "gateway", "", "static guest gateway")
	fs.StringVar(&f.netmask, "netmask", "", "static guest netmask")
	stringArrayVarP(fs, &f.consoles, "consoles", "", "Nanos: where the kernel's console goes (serial, vga, net; repeatable)")
	fs.StringVar(&f.netconsPort, "netconsole-port", "4444", "Nanos: UDP port of the net console (with --consoles)")
	fs.StringVar(&f.netconsIP, "netconsole-ip", "10.0.2.2", "Nanos: address the net console sends to (with --consoles)")
	fs.BoolVarP(&f.nightly, "nightly", "n", false, "use the Nanos nightly build (not available offline: says what is needed)")
	fs.StringVar(&f.arch, "arch", "", "target architecture: amd64 (x86_64) or arm64 (aarch64); default: this machine's")
	fs.BoolVar(&f.trace, "trace", false, "Nanos: trace syscalls, faults and futexes (adds the strace klib)")
	fs.BoolVar(&f.syscallSummary, "syscall-summary", false, "Nanos: print a syscall summary when the program exits (adds the strace klib)")
	fs.BoolVar(&f.missingFiles, "missing-files", false, "Nanos: print the files the program looked for and did not find, at exit")
	stringArrayVarP(fs, &f.noTrace, "no-trace", "", "Nanos: a syscall --trace leaves out (repeatable)")
}

// runFlags are the flags of every command that builds and boots.
type runFlags struct {
	buildFlags
	ports     []string
	udp       []string
	memory    string
	smp       int
	accel     bool
	bridged   bool
	tap       string
	bridge    string
	bridgeIP  string
	skipBuild bool
	debug     bool
	gdbPort   int
	qmp       bool
	force     bool
	machine   string
	qemu      string
	loopback  bool
	noSnap    bool
}

func (f *runFlags) register(fs *pflag.FlagSet) {
	f.buildFlags.register(fs)
	stringArrayVarP(fs, &f.ports, "port", "p", "forward a TCP port, on 127.0.0.1 unless IP is given (nanovms/ops binds all addresses): "+
		"PORT, HOST:GUEST, IP:HOST:GUEST, HOST-GUEST when HOST > GUEST (as nanovms/ops), ascending ranges (each port to itself), comma lists")
	stringArrayVarP(fs, &f.udp, "udp", "", "forward a UDP port (same forms as -p)")
	fs.StringVarP(&f.memory, "memory", "m", "", "guest memory, e.g. 512M or 2G (default 256M)")
	fs.IntVar(&f.smp, "smp", 0, "number of virtual CPUs (default 1)")
	fs.BoolVar(&f.accel, "accel", true, "use KVM where it really works; --accel=false forces software emulation")
	fs.BoolVarP(&f.bridged, "bridged", "b", false, "bridged networking through a tap device (needs root)")
	fs.StringVarP(&f.tap, "tapname", "t", "", "tap device name (created if missing, removed on exit if ops made it)")
	fs.StringVar(&f.bridge, "bridgename", "", "bridge to attach the tap device to (created if missing)")
	fs.StringVar(&f.bridgeIP, "bridgeipaddress", "", "address (with /prefix, else --netmask or /24) to give the bridge")
	fs.BoolVarP(&f.skipBuild, "skipbuild", "s", false, "boot the existing image as it is, writable, without building")
	fs.BoolVarP(&f.debug, "debug", "d", false, "wait for a debugger (gdb stub on --gdbport, default 1234) with acceleration off; Nanos without ASLR")
	fs.IntVarP(&f.gdbPort, "gdbport", "g", 0, "open QEMU's gdb stub on this TCP port")
	fs.BoolVar(&f.qmp, "qmp", false, "open QEMU's QMP monitor on 127.0.0.1 (port RunConfig.Mgmt, else a free one; ops prints it)")
	fs.BoolVarP(&f.force, "force", "f", false, "rebuild the image even when nothing changed")
	fs.StringVar(&f.machine, "machine", "", "microvm (fast direct kernel boot, default) or q35 (BIOS boot of the whole disk, as a cloud VM)")
	fs.StringVar(&f.qemu, "qemu", "", "QEMU binary (default qemu-system-x86_64)")
	fs.BoolVar(&f.noSnap, "no-snapshot", false, "boot the Linux guest cold, not from the state its image's first run saved (RunConfig.Snapshot: false)")
	fs.BoolVar(&f.loopback, "host-loopback", false, "let the guest reach this host's 127.0.0.1 at 10.0.2.2 (QEMU's own user-mode network, as nanovms/ops); "+
		"by default the guest's network (passt) cannot reach the host's loopback")
}

// The rule for every flag below: a flag overrides config.json only when
// the user set it. -a replaces the config's Args and -p adds to its
// Ports, as in nanovms/ops; -e sets one variable over the config's.

// override sets *dst to v when the user set the flag name.
func override[T any](fl *pflag.FlagSet, name string, dst *T, v T) {
	if fl.Changed(name) {
		*dst = v
	}
}

// configFrom reads -c and lays the build flags the user set over it.
func (f *buildFlags) configFrom(fl *pflag.FlagSet) (*lepton.Config, error) {
	c, err := lepton.LoadConfig(f.config)
	if err != nil {
		return nil, err
	}
	override(fl, "args", &c.Args, f.args)
	if err := setEnvs(c, f.envs); err != nil {
		return nil, err
	}
	override(fl, "imagename", &c.RunConfig.ImageName, f.imageName)
	override(fl, "nanos-version", &c.NanosVersion, f.nanosVersion)
	override(fl, "guest", &c.Guest, f.guest)
	override(fl, "target-root", &c.TargetRoot, f.targetRoot)
	override(fl, "verbose", &c.RunConfig.Verbose, f.verbose)
	for _, m := range f.mounts {
		if err := c.AddMount(m); err != nil {
			return nil, err
		}
	}
	override(fl, "uefi", &c.Uefi, f.uefi)
	override(fl, "disable-args-copy", &c.DisableArgsCopy, f.argsNoCopy)
	override(fl, "nightly", &c.NightlyBuild, f.nightly)
	rc := &c.RunConfig
	override(fl, "ip", &rc.IPAddress, f.ip)
	override(fl, "ip-address", &rc.IPAddress, f.ipAddr)
	override(fl, "gateway", &rc.Gateway, f.gateway)
	override(fl, "netmask", &rc.NetMask, f.netmask)
	if fl.Changed("consoles") {
		c.SetConsoles(f.consoles, f.netconsPort, f.netconsIP)
	}
	f.nanosDebug.apply(fl, c)
	if boolFlag(fl, "show-debug") {
		rc.ShowDebug, rc.Verbose = true, true
	}
	if boolFlag(fl, "show-warnings") {
		rc.ShowWarnings = true
	}
	if err := lepton.CheckGuestName(c.Guest); err != nil {
		return nil, fmt.Errorf("--guest: %w", err)
	}
	override(fl, "arch", &c.Arch, f.arch)
	if _, err := c.Target(); err != nil {
		return nil, err
	}
	return c, c.CheckNightly()
}

// setEnvs lays -e K=V over the config's Env.
func setEnvs(c *lepton.Config, envs []string) error {
	for _, kv := range envs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("-e %q: write K=V", kv)
		}
		if c.Env == nil {
			c.Env = map[string]string{}
		}
		c.Env[k] = v
	}
	return nil
}

func appendNew(list []string, add ...string) []string {
	for _, a := range add {
		if !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	return list
}

// configFrom reads -c and lays the build and run flags the user set over it.
func (f *runFlags) configFrom(fl *pflag.FlagSet) (*lepton.Config, error) {
	c, err := f.buildFlags.configFrom(fl)
	if err != nil {
		return nil, err
	}
	rc := &c.RunConfig
	if fl.Changed("port") {
		rc.Ports = append(rc.Ports, f.ports...)
	}
	if fl.Changed("udp") {
		rc.UDPPorts = append(rc.UDPPorts, f.udp...)
	}
	override(fl, "memory", &rc.Memory, f.memory)
	override(fl, "smp", &rc.CPUs, f.smp)
	override(fl, "accel", &rc.Accel, &f.accel)
	override(fl, "bridged", &rc.Bridged, f.bridged)
	override(fl, "tapname", &rc.TapName, f.tap)
	override(fl, "bridgename", &rc.BridgeName, f.bridge)
	override(fl, "bridgeipaddress", &rc.BridgeIPAddress, f.bridgeIP)
	override(fl, "debug", &rc.Debug, f.debug)
	override(fl, "gdbport", &rc.GdbPort, f.gdbPort)
	override(fl, "qmp", &rc.QMP, f.qmp)
	override(fl, "force", &c.Force, f.force)
	override(fl, "machine", &rc.Machine, f.machine)
	override(fl, "host-loopback", &rc.HostLoopback, f.loopback)
	if f.noSnap || noSnapshotEnv() {
		off := false
		rc.Snapshot = &off
	}
	return c, nil
}

// forcedAccel is the accelerator OPS_ACCEL names ("" when unset): kvm or
// tcg, for a host whose probe is wrong. A failing KVM still falls back
// to emulation.
func forcedAccel() (qemu.Accel, error) {
	switch v := os.Getenv("OPS_ACCEL"); v {
	case "":
		return "", nil
	case string(qemu.KVM), string(qemu.TCG):
		return qemu.Accel(v), nil
	default:
		return "", fmt.Errorf("OPS_ACCEL=%q: use kvm or tcg, or unset it to let ops probe the host", v)
	}
}

// noSnapshotEnv is OPS_NO_SNAPSHOT=1: --no-snapshot for every command
// (a whole test suite run cold, say).
func noSnapshotEnv() bool { return os.Getenv("OPS_NO_SNAPSHOT") == "1" }

// boolFlag reports a boolean flag that fl may lack (--show-debug and
// --show-warnings are the root command's).
func boolFlag(fl *pflag.FlagSet, name string) bool {
	v, err := fl.GetBool(name)
	return err == nil && v
}

// localFlag is -l, on every command that can take a local package.
func localFlag(fs *pflag.FlagSet, local *bool) {
	fs.BoolVarP(local, "local", "l", false, "a local package (ops pkg list -l lists them)")
}

// insecureFlag is --insecure, on every command that talks to a registry.
func insecureFlag(fs *pflag.FlagSet, insecure *bool) {
	fs.BoolVar(insecure, "insecure", false, "talk to the registry over plain HTTP")
}

// stringArray is pflag's repeatable stringArray flag without its start-up
// cost: pflag works out each flag's default text as the flag is
// registered, and for its own string arrays that means a CSV writer with a
// 4 KiB buffer, every time. ops registers a few dozen of them, all empty
// by default, before it runs any command: half of what building the
// command tree allocated.
type stringArray struct {
	p       *[]string
	changed bool
}

// stringArrayVarP registers a repeatable flag collecting every value
// given, in order, as pflag's StringArrayVarP does (no comma splitting).
func stringArrayVarP(fs *pflag.FlagSet, p *[]string, name, short, usage string) {
	*p = nil
	fs.VarP(&stringArray{p: p}, name, short, usage)
	// "": pflag shows no default for it, as for its own empty arrays.
	fs.Lookup(name).DefValue = ""
}

// Set replaces the default with the first value given, then appends.
func (s *stringArray) Set(v string) error {
	if !s.changed {
		*s.p, s.changed = nil, true
	}
	*s.p = append(*s.p, v)
	return nil
}

func (s *stringArray) Type() string { return "stringArray" }

// String is the values as pflag shows a string array: [a,b].
func (s *stringArray) String() string {
	if len(*s.p) == 0 {
		return "[]"
	}
	return "[" + strings.Join(*s.p, ",") + "]"
}

// Append, Replace and GetSlice make it a pflag.SliceValue.
func (s *stringArray) Append(v string) error { *s.p = append(*s.p, v); return nil }

func (s *stringArray) Replace(v []string) error { *s.p = slices.Clone(v); return nil }

func (s *stringArray) GetSlice() []string { return slices.Clone(*s.p) }
