package lepton

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opsdev/ops/guestinit"
	"github.com/opsdev/ops/internal/fileutil"
)

// LinuxKernel is the host distribution's kernel, used by the Linux guest.
type LinuxKernel struct {
	Version string
	Image   string   // what QEMU boots: a vmlinux (PVH entry) or the vmlinuz
	Vmlinuz string   // the distribution's file
	Modules []string // host paths of the modules to load, in load order
	ModDir  string   // /lib/modules/<version>, "" for a kernel with its drivers built in
	// LateModules are loaded once the program runs: the ACPI power
	// button's, so a stop request reaches the program.
	LateModules []string
}

// GuestModules are the drivers the Linux guest needs on microvm: the
// virtio-mmio transport and the network card. Built-in drivers are skipped.
func GuestModules() []string { return []string{"virtio_mmio", "virtio_net"} }

// ErrNoLinuxKernel means no guest kernel was found on the host.
var ErrNoLinuxKernel = errors.New("no Linux guest kernel found (install one with 'make deps', or apt-get install linux-image-cloud-amd64, or set LinuxKernel in config.json)")

// FindLinuxKernel finds the guest kernel: the configured file, else the
// newest /boot/vmlinuz-* that has its /lib/modules folder. bootDir and
// modDir are "/boot" and "/lib/modules" outside tests.
func FindLinuxKernel(configured, bootDir, modDir string) (*LinuxKernel, error) {
	var cands []string
	if configured != "" {
		if _, err := os.Stat(configured); err != nil {
			return nil, fmt.Errorf("LinuxKernel: %w", err)
		}
		cands = []string{configured}
	} else {
		m, _ := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
		for i := len(m) - 1; i >= 0; i-- {
			cands = append(cands, m[i])
		}
		sortVersionsDesc(cands)
	}
	for _, c := range cands {
		ver := strings.TrimPrefix(filepath.Base(c), "vmlinuz-")
		md := filepath.Join(modDir, ver)
		if _, err := os.Stat(filepath.Join(md, "modules.dep")); err != nil {
			if configured != "" {
				// A custom kernel with its drivers built in needs no modules.
				return &LinuxKernel{Version: ver, Image: c, Vmlinuz: c}, nil
			}
			continue
		}
		mods, err := ModuleOrder(md, GuestModules())
		if err != nil {
			return nil, err
		}
		k := &LinuxKernel{Version: ver, Image: c, Vmlinuz: c, Modules: mods, ModDir: md}
		// The power button's drivers, for ops instance stop: loaded after
		// the program has started, so they cost the boot nothing. A kernel
		// without them still boots; stop then ends the guest after -t.
		if late, err := ModuleOrder(md, []string{"button", "evdev"}); err == nil {
			for _, m := range late {
				if !slices.Contains(mods, m) {
					k.LateModules = append(k.LateModules, m)
				}
			}
		}
		return k, nil
	}
	return nil, ErrNoLinuxKernel
}

func sortVersionsDesc(p []string) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && versionLess(filepath.Base(p[j-1]), filepath.Base(p[j])); j-- {
			p[j-1], p[j] = p[j], p[j-1]
		}
	}
}

func modName(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		b = strings.TrimSuffix(b, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(b, ".ko"), "-", "_")
}

// ModuleOrder reads modules.dep and returns the host paths of want and
// their dependencies, each after everything it depends on.
func ModuleOrder(modDir string, want []string) ([]string, error) {
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	file := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n := modName(mod)
		file[n] = mod
		for _, d := range strings.Fields(rest) {
			deps[n] = append(deps[n], modName(d))
			if _, ok := file[modName(d)]; !ok {
				file[modName(d)] = d
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[modName(l)] = true
		}
	}
	var out []string
	done := map[string]bool{}
	var add func(n string, depth int) error
	add = func(n string, depth int) error {
		if done[n] || builtin[n] {
			return nil
		}
		if depth > 32 {
			return fmt.Errorf("module dependencies of %s loop", n)
		}
		rel, ok := file[n]
		if !ok {
			return fmt.Errorf("module %s is neither built into the kernel nor listed in %s/modules.dep", n, modDir)
		}
		ds := deps[n]
		for i := len(ds) - 1; i >= 0; i-- {
			if err := add(ds[i], depth+1); err != nil {
				return err
			}
		}
		done[n] = true
		out = append(out, filepath.Join(modDir, filepath.FromSlash(rel)))
		return nil
	}
	for _, w := range want {
		if err := add(modName(w), 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PrepareBootKernel makes the kernel QEMU boots fastest: the vmlinuz's
// payload decompressed once into an ELF vmlinux (booted through its PVH
// entry), cached under the ops home. Payloads ops cannot decompress keep
// the vmlinuz.
func (h Home) PrepareBootKernel(k *LinuxKernel) error {
	st, err := os.Stat(k.Vmlinuz)
	if err != nil {
		return err
	}
	dir := filepath.Join(h.Dir, "linux", k.Version)
	out := filepath.Join(dir, "vmlinux")
	stamp := filepath.Join(dir, "vmlinuz.stamp")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == k.Vmlinuz+" "+fileStamp(st) {
		if _, err := os.Stat(out); err == nil {
			k.Image = out
			return nil
		}
	}
	b, err := os.ReadFile(k.Vmlinuz)
	if err != nil {
		return err
	}
	elfData, err := ExtractVmlinux(b)
	if err != nil {
		return nil // not something we can unpack: boot the vmlinuz as it is
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(out, elfData, 0o644); err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(stamp, []byte(k.Vmlinuz+" "+fileStamp(st)), 0o644); err != nil {
		return err
	}
	k.Image = out
	return nil
}

// ExtractVmlinux returns the ELF kernel inside a bzImage whose payload is
// gzip or LZ4 (legacy frame) compressed.
func ExtractVmlinux(bz []byte) ([]byte, error) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" {
		if bytes.HasPrefix(bz, []byte("\x7fELF")) {
			return bz, nil
		}
		return nil, errors.New("not a bzImage")
	}
	setup := int(bz[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*512 + int(binary.LittleEndian.Uint32(bz[0x248:]))
	n := int(binary.LittleEndian.Uint32(bz[0x24c:]))
	if off < 0 || n <= 0 || off+n > len(bz) {
		return nil, errors.New("bzImage payload lies outside the file")
	}
	p := bz[off : off+n]
	var out []byte
	var err error
	switch {
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(p)); err == nil {
			out, err = io.ReadAll(io.LimitReader(zr, 1<<30))
		}
	case bytes.HasPrefix(p, []byte{0x02, 0x21, 0x4c, 0x18}):
		out, err = lz4Legacy(p)
	default:
		return nil, errors.New("bzImage payload compression not supported")
	}
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(out, []byte("\x7fELF")) {
		return nil, errors.New("bzImage payload is not an ELF")
	}
	return out, nil
}

// lz4Legacy decodes the LZ4 legacy frame the kernel uses: a magic number,
// then blocks each prefixed by its compressed size; the kernel appends the
// uncompressed size after the last block.
func lz4Legacy(p []byte) ([]byte, error) {
	const magic = 0x184c2102
	var out []byte
	i := 0
	for len(p)-i >= 4 {
		size := int(binary.LittleEndian.Uint32(p[i:]))
		i += 4
		if size == magic {
			continue
		}
		if size > len(p)-i {
			break // the trailing uncompressed-size field
		}
		var err error
		if out, err = lz4Block(out, p[i:i+size]); err != nil {
			return nil, err
		}
		i += size
	}
	return out, nil
}

func lz4Block(out, b []byte) ([]byte, error) {
	i := 0
	readLen := func(n int) (int, error) {
		if n != 15 {
			return n, nil
		}
		for {
			if i >= len(b) {
				return 0, errors.New("lz4: truncated length")
			}
			c := int(b[i])
			i++
			n += c
			if n > 1<<30 {
				return 0, errors.New("lz4: length too large")
			}
			if c != 255 {
				return n, nil
			}
		}
	}
	for i < len(b) {
		tok := b[i]
		i++
		lit, err := readLen(int(tok >> 4))
		if err != nil {
			return nil, err
		}
		if lit > len(b)-i {
			return nil, errors.New("lz4: literals overrun the block")
		}
		out = append(out, b[i:i+lit]...)
		i += lit
		if i == len(b) {
			break
		}
		if len(b)-i < 2 {
			return nil, errors.New("lz4: truncated offset")
		}
		off := int(binary.LittleEndian.Uint16(b[i:]))
		i += 2
		ml, err := readLen(int(tok & 15))
		if err != nil {
			return nil, err
		}
		ml += 4
		if off == 0 || off > len(out) {
			return nil, errors.New("lz4: bad match offset")
		}
		start := len(out) - off
		for k := 0; k < ml; k++ {
			out = append(out, out[start+k])
		}
	}
	return out, nil
}

// Initramfs paths of ops's own files, out of the program's way.
const (
	InitPath     = "/.ops/init"
	ManifestPath = "/.ops/manifest.json"
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

// LinuxCommandLine is the guest kernel's command line. tscKHz, when known
// (software emulation runs the guest's TSC at the host's rate), spares the
// kernel calibrating against the PIT, which fails now and then under
// emulation and leaves the guest without a clock.
//
// The rest shortens the boot under emulation, where the kernel's own
// housekeeping dominates: cryptomgr.notests skips the crypto self-tests
// (~0.3 s), and noreplace-smp keeps the kernel from rewriting every lock
// prefix when it finds one CPU (thousands of text pokes, each a page-table
// switch: ~0.1 s). skippedInitcalls leaves out the kernel's tracing set-up.
func LinuxCommandLine(debug bool, tscKHz int) string {
	s := "console=ttyS0 rdinit=" + InitPath + " rootfstype=ramfs panic=-1 reboot=t 8250.nr_uarts=1 tsc=reliable no_timer_check cryptomgr.notests noreplace-smp" +
		" initcall_blacklist=" + skippedInitcalls
	if tscKHz > 0 {
		s += fmt.Sprintf(" tsc_early_khz=%d", tscKHz)
	}
	if debug {
		return s + " ops.debug=1"
	}
	return s + " quiet loglevel=1"
}

// InitManifest turns a plan into what the guest init reads.
func InitManifest(p *Plan, k *LinuxKernel, debug bool) guestinit.Manifest {
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
