package cmd

import (
	"fmt"
	"strings"

	"github.com/opsdev/ops/lepton"
	"github.com/spf13/pflag"
)

// buildFlags are the flags of every command that builds an image.
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
}

func (f *buildFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.config, "config", "c", "", "config.json to read")
	fs.StringArrayVarP(&f.args, "args", "a", nil, "program argument (repeatable)")
	fs.StringArrayVarP(&f.envs, "envs", "e", nil, "environment variable K=V (repeatable)")
	fs.StringVarP(&f.imageName, "imagename", "i", "", "image name (default: the program's file name)")
	fs.StringVarP(&f.output, "output", "o", "", "image path (default: <ops home>/images/<name>)")
	fs.StringVar(&f.nanosVersion, "nanos-version", "", "installed Nanos release to use (default: latest.txt)")
	fs.StringVar(&f.guest, "guest", "", "guest kernel: nanos or linux (default: nanos when a release is installed, else linux)")
	fs.StringVar(&f.targetRoot, "target-root", "", "find shared libraries in this root folder instead of /")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "say more, including the QEMU command line")
	fs.StringArrayVar(&f.mounts, "mounts", nil, "mount a volume: VOLUME:/path[:ro] (repeatable; ops volume create makes one)")
	fs.BoolVar(&f.uefi, "uefi", false, "Nanos: a disk UEFI firmware boots too (an EFI System Partition); ops run boots it with OVMF on q35")
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
	ip        string
	gateway   string
	netmask   string
	skipBuild bool
	debug     bool
	machine   string
	qemu      string
}

func (f *runFlags) register(fs *pflag.FlagSet) {
	f.buildFlags.register(fs)
	fs.StringArrayVarP(&f.ports, "port", "p", nil, "forward a TCP port: PORT, HOST:GUEST, IP:HOST:GUEST, ranges and comma lists")
	fs.StringArrayVar(&f.udp, "udp", nil, "forward a UDP port (same forms as -p)")
	fs.StringVarP(&f.memory, "memory", "m", "", "guest memory, e.g. 512M or 2G (default 256M)")
	fs.IntVar(&f.smp, "smp", 0, "number of virtual CPUs (default 1)")
	fs.BoolVar(&f.accel, "accel", true, "use KVM where it really works; --accel=false forces software emulation")
	fs.BoolVarP(&f.bridged, "bridged", "b", false, "bridged networking through a tap device (needs root)")
	fs.StringVarP(&f.tap, "tapname", "t", "", "tap device name (created if missing, removed on exit if ops made it)")
	fs.StringVar(&f.bridge, "bridgename", "", "bridge to attach the tap device to (created if missing)")
	fs.StringVar(&f.ip, "ip", "", "static guest IP address")
	fs.StringVar(&f.gateway, "gateway", "", "static guest gateway")
	fs.StringVar(&f.netmask, "netmask", "", "static guest netmask")
	fs.BoolVarP(&f.skipBuild, "skipbuild", "s", false, "boot the existing image as it is, writable, without building")
	fs.BoolVarP(&f.debug, "debug", "d", false, "show the guest kernel's own messages")
	fs.StringVar(&f.machine, "machine", "", "microvm (fast direct kernel boot, default) or q35 (BIOS boot of the whole disk, as a cloud VM)")
	fs.StringVar(&f.qemu, "qemu", "", "QEMU binary (default qemu-system-x86_64)")
}

// The rule for every flag below: a flag overrides config.json only when
// the user set it. -a and -p add to the config's lists; -e sets one
// variable over the config's.

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
	if fl.Changed("args") {
		c.Args = append(c.Args, f.args...)
	}
	if fl.Changed("envs") {
		if c.Env == nil {
			c.Env = map[string]string{}
		}
		for _, kv := range f.envs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("-e %q: write K=V", kv)
			}
			c.Env[k] = v
		}
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
	if err := lepton.CheckGuestName(c.Guest); err != nil {
		return nil, fmt.Errorf("--guest: %w", err)
	}
	return c, nil
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
	override(fl, "ip", &rc.IPAddress, f.ip)
	override(fl, "gateway", &rc.Gateway, f.gateway)
	override(fl, "netmask", &rc.NetMask, f.netmask)
	override(fl, "debug", &rc.Debug, f.debug)
	override(fl, "machine", &rc.Machine, f.machine)
	return c, nil
}

// localFlag is -l, on every command that can take a local package.
func localFlag(fs *pflag.FlagSet, local *bool) {
	fs.BoolVarP(local, "local", "l", false, "a local package (ops pkg list -l lists them)")
}

// insecureFlag is --insecure, on every command that talks to a registry.
func insecureFlag(fs *pflag.FlagSet, insecure *bool) {
	fs.BoolVar(insecure, "insecure", false, "talk to the registry over plain HTTP")
}
