package cmd

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
	"github.com/spf13/cobra"
)

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

func newRunCmd(app *App) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [ELF]",
		Short: "Build an image from an ELF program (or reuse it) and boot it",
		Long: `Build an image from an ELF program, or reuse the image when nothing changed,
and boot it in the foreground. The guest's console is ops's standard output,
and ops exits with the guest program's exit code.

Port forwards listen on 127.0.0.1 unless an address is given:
  -p 8080              host 127.0.0.1:8080 -> guest 8080
  -p 8081:80           host 8081 -> guest 80
  -p 0.0.0.0:8080:8080 reachable from the network
  -p 9000-9002         three forwards, each to the same guest port`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.loadConfig(cmd)
			if err != nil {
				return err
			}
			f.mergeRun(cmd, c)
			var in lepton.PlanInput
			var name string
			if !f.skipBuild {
				if in, name, err = elfInput(c, args); err != nil {
					return err
				}
			} else if name = c.Program; len(args) > 0 {
				name = args[0]
			}
			return runVM(app, f, c, in, filepath.Base(name))
		},
	}
	f.registerRun(cmd)
	return cmd
}

// registerRun adds the build and run flags to cmd.
func (f *runFlags) registerRun(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.register(fs)
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

func (f *runFlags) mergeRun(cmd *cobra.Command, c *lepton.Config) {
	fl := cmd.Flags()
	set := fl.Changed
	rc := &c.RunConfig
	if set("port") {
		rc.Ports = append(rc.Ports, f.ports...)
	}
	if set("udp") {
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
}

// vmFor describes the VM that boots an image.
func vmFor(b *built, c *lepton.Config, accel qemu.Accel, snapshot bool) (qemu.VM, error) {
	rc := c.RunConfig
	vm := qemu.VM{Machine: rc.Machine, Accel: accel, CPUs: rc.CPUs, DebugExit: true, GdbPort: rc.GdbPort}
	if vm.Machine == "" {
		vm.Machine = qemu.MicroVM
	}
	if rc.Memory != "" {
		n, err := lepton.ParseSize(rc.Memory)
		if err != nil {
			return vm, fmt.Errorf("memory: %w", err)
		}
		if n < 1<<20 { // a bare number means MiB, as QEMU reads -m
			n <<= 20
		}
		vm.MemoryMB = int(n >> 20)
	}
	fwds, err := qemu.ParsePorts(rc.Ports, "tcp")
	if err != nil {
		return vm, err
	}
	udp, err := qemu.ParsePorts(rc.UDPPorts, "udp")
	if err != nil {
		return vm, err
	}
	vm.Net = qemu.Net{Mode: "user", Forwards: append(fwds, udp...)}
	if rc.Bridged || rc.TapName != "" {
		if rc.TapName == "" {
			return vm, fmt.Errorf("bridged networking needs a tap device: pass --tapname")
		}
		vm.Net = qemu.Net{Mode: "tap", Tap: rc.TapName}
	}
	switch b.spec.Guest {
	case lepton.GuestNanos:
		vm.RNG = true
		if accel == qemu.TCG {
			vm.Pages = qemu.PagesMemfdRAM
		}
		vm.Drives = []qemu.Drive{{File: b.result.Path, Snapshot: snapshot}}
		if vm.Machine == qemu.MicroVM {
			vm.Kernel = b.spec.Nanos.Kernel
		}
	case lepton.GuestLinux:
		if vm.Machine != qemu.MicroVM {
			return vm, fmt.Errorf("the Linux guest boots on microvm only")
		}
		vm.Kernel = b.spec.Linux.Image
		vm.Initrd = b.result.Path
		if accel == qemu.TCG {
			vm.Pages = qemu.PagesSmall
		}
		if rc.Memory == "" {
			vm.MemoryMB = linuxMemoryMB(b.result.Size)
		}
		khz := 0
		if accel == qemu.TCG {
			khz = qemu.TSCkHz(readFile("/proc/cpuinfo"))
		}
		vm.Append = lepton.LinuxCommandLine(rc.Debug, khz)
	}
	return vm, nil
}

// runVM builds (or reuses) the image for in and boots it in the
// foreground; ops's exit code is the guest program's.
func runVM(app *App, f *runFlags, c *lepton.Config, in lepton.PlanInput, name string) error {
	// Stop on Ctrl-C or SIGTERM from here on: nothing is left behind.
	ctx, stop, caught := stopOnSignal()
	defer stop()

	var b *built
	var err error
	if f.skipBuild {
		b, err = existingImage(&f.buildFlags, c, name)
	} else {
		b, err = buildImage(&f.buildFlags, c, in, name)
	}
	if err != nil {
		return err
	}
	if b.note != "" {
		fmt.Fprintln(app.Stderr, b.note)
	}
	allow := c.RunConfig.Accel == nil || *c.RunConfig.Accel
	accel, why := qemu.DecideAccel(qemu.HostProbe(allow))
	// The VM depends on the accelerator (emulation gets its own CPU flags,
	// memory backing and guest clock hint), so a retry under TCG remakes it.
	makeVM := func(a qemu.Accel) (qemu.VM, error) {
		vm, err := vmFor(b, c, a, !f.skipBuild)
		vm.Binary = f.qemu
		return vm, err
	}
	vm, err := makeVM(accel)
	if err != nil {
		return err
	}
	if err := qemu.CheckFree(vm.Net.Forwards); err != nil {
		return err
	}
	if vm.Net.Mode == "tap" {
		cleanup, err := setupTap(c.RunConfig.TapName, c.RunConfig.BridgeName)
		defer cleanup()
		if err != nil {
			return err
		}
	}
	if c.RunConfig.Verbose {
		state := "built"
		if b.result.Reused {
			state = "reused"
		}
		fmt.Fprintf(app.Stderr, "image %s (%s guest, %s in %v); accel %s: %s\n", b.result.Path, b.spec.Guest, state, b.took.Round(time.Millisecond), accel, why)
	}
	if c.RunConfig.Verbose {
		for _, fw := range vm.Net.Forwards {
			fmt.Fprintf(app.Stderr, "forward %s\n", fw)
		}
	}
	var res *qemu.Result
	if ctx.Err() == nil {
		if res, err = boot(ctx, app, vm, c.RunConfig.Verbose); err != nil {
			return err
		}
	} else {
		res = &qemu.Result{Stopped: true}
	}
	if accel == qemu.KVM && !res.Stopped && res.StartFailed() {
		fmt.Fprintf(app.Stderr, "ops: QEMU failed under KVM (%s); retrying with software emulation\n", strings.TrimSpace(res.QEMUError()))
		if vm, err = makeVM(qemu.TCG); err != nil {
			return err
		}
		if res, err = boot(ctx, app, vm, c.RunConfig.Verbose); err != nil {
			return err
		}
	}
	if res.Stopped {
		if caught() == syscall.SIGTERM {
			return &ExitError{Code: 143}
		}
		return &ExitError{Code: 130}
	}
	code, err := res.GuestExitCode()
	if err != nil {
		return err
	}
	return exitWith(code)
}

func exitWith(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}

func boot(ctx context.Context, app *App, vm qemu.VM, verbose bool) (*qemu.Result, error) {
	argv, err := vm.Args()
	if err != nil {
		return nil, err
	}
	if verbose {
		fmt.Fprintln(app.Stderr, qemu.ShellLine(argv))
	}
	p, err := qemu.Start(argv, vm.Pages, app.Stdout, app.Stderr)
	if err != nil {
		return nil, err
	}
	return p.Wait(ctx), nil
}

// existingImage finds the image for -s without building it.
func existingImage(f *buildFlags, c *lepton.Config, name string) (*built, error) {
	home, err := lepton.DefaultHome()
	if err != nil {
		return nil, err
	}
	b := &built{home: home}
	if b.note, err = chooseGuest(home, c, &b.spec); err != nil {
		return nil, err
	}
	path, err := imagePath(home, f, c, b.spec.Guest, name)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--skipbuild: no image at %s; build it first", path)
	}
	b.result = &lepton.BuildResult{Path: path, Reused: true, Size: st.Size()}
	return b, nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// linuxMemoryMB sizes the Linux guest: the initramfs sits in memory twice
// while the kernel unpacks it, and the program needs room beyond that.
func linuxMemoryMB(imageBytes int64) int {
	mb := int(2*imageBytes>>20) + 192
	mb = (mb + 63) / 64 * 64
	return max(mb, 256)
}

// stopOnSignal returns a context cancelled by the first SIGINT or SIGTERM,
// a function to release the handler, and one telling which signal came.
func stopOnSignal() (context.Context, func(), func() os.Signal) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got os.Signal
	go func() {
		select {
		case s := <-sigs:
			mu.Lock()
			got = s
			mu.Unlock()
			cancel()
		case <-ctx.Done():
		}
	}()
	stop := func() { signal.Stop(sigs); cancel() }
	caught := func() os.Signal {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
	return ctx, stop, caught
}
