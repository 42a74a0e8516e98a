package lepton

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/arch"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/imgfmt"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/qemu"
	"github.com/opsdev/ops/release"
	"github.com/opsdev/ops/volume"
)

// nanosGuest is the Nanos unikernel: a disk with a boot filesystem (the
// kernel and klibs) and a TFS root filesystem holding the tree and the
// manifest.
type nanosGuest struct {
	Kernel nanosKernel
	// UEFI is the release's bootx64.efi when the image is for UEFI
	// firmware (Uefi in config.json, --uefi); "" for BIOS and microvm.
	UEFI string
	// Memo is a folder where the boot filesystem's UUID is kept between
	// builds: the release's own ("" keeps none).
	Memo string
	// Digests is the file keeping host files' digests between builds
	// (opsfs.DigestCache; "" keeps none).
	Digests string
}

// Name implements Guest.
func (g *nanosGuest) Name() string { return "nanos" }

// Arch implements Guest.
func (g *nanosGuest) Arch() arch.Arch { return g.Kernel.arch() }

// load implements Guest: nanosFor, saying how to install a release when
// the user named this guest.
func (g *nanosGuest) load(home Home, c *Config, named bool) (Guest, error) {
	ng, err := nanosFor(home, c)
	if err != nil && named {
		return nil, fmt.Errorf("%w; install one with 'ops update' (or 'ops update --from FILE' offline), or use --guest linux", err)
	}
	if err != nil {
		return nil, err
	}
	return ng, nil
}

// nanosFor is the Nanos guest for the target architecture with the
// installed release's files, each replaced by Kernel, Boot or KlibDir
// from config.json when set. An arm64 disk has no boot loader: QEMU loads
// the kernel.
func nanosFor(home Home, c *Config) (*nanosGuest, error) {
	a, err := c.Target()
	if err != nil {
		return nil, err
	}
	k := nanosKernel{Kernel: c.Kernel, Boot: c.Boot, KlibDir: c.KlibDir, Arch: a}
	if a == arch.ARM64 {
		k.Boot = ""
	}
	memo := ""
	if c.Kernel == "" || (a == arch.AMD64 && c.Boot == "") {
		rel, err := home.Releases(a).Find(c.NanosVersion)
		if err != nil {
			return nil, err
		}
		k = nanosKernel{Kernel: rel.Kernel, Boot: rel.Boot, KlibDir: rel.KlibDir, Version: rel.Version, Arch: a}
		if c.Kernel == "" {
			memo = rel.Dir // the boot filesystem is the release's
		}
		for _, o := range []struct {
			dst *string
			v   string
		}{{&k.Kernel, c.Kernel}, {&k.Boot, c.Boot}, {&k.KlibDir, c.KlibDir}} {
			if o.v != "" && (a == arch.AMD64 || o.dst != &k.Boot) {
				*o.dst = o.v
			}
		}
	}
	g := &nanosGuest{Kernel: k, Memo: memo, Digests: home.digestsFile()}
	if c.Uefi {
		var err error
		if g.UEFI, err = uefiLoader(home, c); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// installed implements Guest: a release for this machine is installed.
func (g *nanosGuest) installed(home Home) bool {
	_, err := home.Releases(arch.Host()).Find("")
	return err == nil
}

// absent implements Guest.
func (g *nanosGuest) absent(err error) bool { return errors.Is(err, release.ErrNotInstalled) }

// missing implements Guest.
func (g *nanosGuest) missing(_ Home, a arch.Arch) string {
	if a != arch.AMD64 {
		return fmt.Sprintf("no %s Nanos release is installed (run 'ops update --arch %s', or 'ops update --arch %s --from FILE' offline)", a, a, a)
	}
	return "no Nanos release is installed (run 'ops update', or 'ops update --from FILE' offline)"
}

// fallback implements Guest.
func (g *nanosGuest) fallback() string { return "no Nanos release installed; run 'ops update'" }

// chosen implements Guest.
func (g *nanosGuest) chosen() string { return "nanos " + g.Kernel.Version }

// imageSuffix implements Guest: Nanos images keep the name as given, as
// nanovms/ops names them.
func (g *nanosGuest) imageSuffix() string { return "" }

// isImage implements Guest: a Nanos image is a disk, its MBR signed.
func (g *nanosGuest) isImage(head []byte) bool {
	return len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa
}

// imageArch implements Guest: an arm64 disk starts with the boot stub,
// whose region record names no stage2; an amd64 disk with boot.img's.
func (g *nanosGuest) imageArch(head []byte) arch.Arch {
	if n, ok := opsfs.Stage2Len(head); ok && n == 0 {
		return arch.ARM64
	}
	return arch.AMD64
}

// ImageFormat implements Guest: a raw disk.
func (g *nanosGuest) ImageFormat() string { return string(imgfmt.Raw) }

// exportable implements Guest: a disk converts to every disk format.
func (g *nanosGuest) exportable() error { return nil }

// key implements Guest: how the filesystems' UUIDs are derived, the
// kernel, the boot loader and each klib used.
func (g *nanosGuest) key(h io.Writer, p *Plan) error {
	fmt.Fprintf(h, "uuid %s\n", opsfs.UUIDScheme)
	fmt.Fprintf(h, "arch %s\n", g.Kernel.arch())
	for _, f := range []struct{ l, p string }{{"kernel", g.Kernel.Kernel}, {"boot", g.Kernel.Boot}} {
		if f.p == "" {
			continue // arm64: no boot loader
		}
		if err := stampFile(h, f.l, f.p); err != nil {
			return err
		}
	}
	if g.UEFI != "" {
		if err := stampFile(h, "uefi", g.UEFI); err != nil {
			return fmt.Errorf("UEFI loader: %w", err)
		}
	}
	for _, k := range p.Klibs {
		if err := stampFile(h, "klib", filepath.Join(g.Kernel.KlibDir, k)); err != nil {
			return fmt.Errorf("klib %s: %w", k, err)
		}
	}
	return nil
}

// env implements Guest: NANOS_VERSION, as nanovms/ops sets it.
func (g *nanosGuest) env() map[string]string {
	if g.Kernel.Version == "" {
		return nil
	}
	return map[string]string{"NANOS_VERSION": g.Kernel.Version}
}

// VolumeFormat implements Guest: TFS volumes, mounted by the kernel
// through the manifest's mounts.
func (g *nanosGuest) VolumeFormat() volume.Format { return volume.TFS{} }

// write implements Guest.
func (g *nanosGuest) write(f *os.File, p *Plan, minRoot int64) error {
	disk, err := layoutNanos(p, g.Kernel, minRoot, nil)
	if err != nil {
		return err
	}
	return g.withCaches(disk, func() error {
		if g.UEFI != "" {
			return writeUEFI(f, disk, g.UEFI, g.Kernel.arch())
		}
		return disk.WriteTo(f)
	})
}

// withCaches runs write, which writes disk, with the boot filesystem's
// UUID recalled (recallBootUUID) and the digest cache in use, and keeps
// what it learned of both once it succeeded.
func (g *nanosGuest) withCaches(disk *opsfs.NanosDisk, write func() error) error {
	save := g.recallBootUUID(disk.BootFS)
	digests := loadDigests(g.Digests)
	disk.BootFS.UseDigests(digests)
	disk.RootFS.UseDigests(digests)
	if err := write(); err != nil {
		return err
	}
	save()
	saveDigests(g.Digests, digests)
	return nil
}

// loadDigests is the digest cache kept at path: empty when there is none
// or it cannot be read (it is only a shortcut), nil when path is "".
func loadDigests(path string) *opsfs.DigestCache {
	if path == "" {
		return nil
	}
	now := time.Now()
	b, err := os.ReadFile(path)
	if err != nil {
		return opsfs.NewDigestCache(now)
	}
	c, _ := opsfs.LoadDigestCache(b, now)
	return c
}

// saveDigests keeps the cache at path when the build added to it. It is
// written without waiting for the disk (the file's checksum tells a torn
// one) and a failure only costs the next build its hashing.
func saveDigests(path string, c *opsfs.DigestCache) {
	if path == "" || c == nil || !c.Changed() {
		return
	}
	dir := filepath.Dir(path)
	if os.MkdirAll(dir, 0o755) != nil || fileutil.ClearStale(dir) != nil {
		return
	}
	fileutil.WriteUnsynced(path, 0o644, func(f *os.File) error {
		_, err := f.Write(c.Bytes())
		return err
	})
}

// recallBootUUID gives the boot filesystem the UUID kept from an earlier
// build with the same kernel and klibs (same stamps: size, modification
// time, inode, mode), so its contents are placed without being hashed; it
// is the same filesystem in every image of a release. It returns what
// keeps the UUID after a write that had to hash them. The memo is only a
// shortcut: when it cannot be read or kept, the UUID is hashed as ever.
func (g *nanosGuest) recallBootUUID(boot *opsfs.TFS) (save func()) {
	none := func() {}
	if g.Memo == "" {
		return none
	}
	h := sha256.New()
	err := boot.UUIDKey(h, func(e *opsfs.Entry) ([]byte, error) {
		st := e.Info
		if st == nil {
			var err error
			if st, err = os.Stat(e.Source); err != nil {
				return nil, err
			}
		}
		return fileutil.AppendStamp([]byte(e.Source+" "), st), nil
	})
	if err != nil {
		return none
	}
	memo := filepath.Join(g.Memo, fmt.Sprintf(".boot-%x.uuid", h.Sum(nil)[:16]))
	if b, err := os.ReadFile(memo); err == nil {
		var uuid [16]byte
		if n, err := hex.Decode(uuid[:], bytes.TrimSpace(b)); err == nil && n == len(uuid) {
			boot.SetUUID(uuid)
			return none
		}
	}
	return func() {
		if uuid, ok := boot.UUID(); ok {
			fileutil.WriteAtomic(memo, []byte(hex.EncodeToString(uuid[:])+"\n"), 0o644)
		}
	}
}

// VM implements Guest. On microvm QEMU loads the kernel directly and the
// disk holds the root filesystem; on q35 the BIOS boots the whole disk.
// Under emulation guest RAM comes from a memfd in 4 KiB pages: Nanos
// touches a little of many 2 MiB regions while it sets up its heaps, and
// huge pages cost it ~12 ms to hello.
//
// An arm64 VM has no exit device: the kernel writes the program's exit
// code to the disk's klog area (a record it writes whenever a program
// exits with a code other than 0), which ops reads back once QEMU has
// exited (exitCode), from the disk itself when the run writes to it, else
// from the overlay that took the run's writes (Boot.Scratch).
func (g *nanosGuest) VM(b Boot) (qemu.VM, error) {
	a := g.Kernel.arch()
	if len(b.Shares) > 0 && b.Run.Machine == "" && a == arch.AMD64 {
		// The kernel's virtio-9p driver is a PCI one: shares want a PCI
		// machine, and microvm has none.
		b.Run.Machine = qemu.Q35
	}
	if g.UEFI != "" {
		if err := uefiMachine(&b.Run, a); err != nil {
			return qemu.VM{}, err
		}
	}
	vm, err := baseVM(b, a)
	if err != nil {
		return vm, err
	}
	if g.UEFI != "" {
		paths := qemu.OVMFPaths()
		if a == arch.ARM64 {
			paths = qemu.AAVMFPaths()
		}
		if vm.Firmware, err = qemu.FindOVMF(paths); err != nil {
			return vm, err
		}
	}
	vm.RNG = true
	if b.Accel == qemu.TCG {
		vm.Pages = qemu.PagesMemfdRAM
	}
	disk := qemu.Drive{File: b.Image.Path, Snapshot: !b.Writable}
	switch {
	case b.Image.Base != "":
		// An overlay over a shared base (SharedParts): it takes the
		// guest's writes, as a container's image does.
		if !b.Writable {
			return vm, fmt.Errorf("%s is an overlay over %s: it boots only writable", b.Image.Path, b.Image.Base)
		}
		disk = qemu.Drive{File: b.Image.Base, Overlay: b.Image.Path, Image: true}
	case !b.Writable:
		// ops's own overlay in the boot's scratch folder takes the
		// guest's writes rather than QEMU's snapshot=on, so that ops can
		// read the exit record Nanos writes there: the whole exit code,
		// where the exit device carries 7 bits of it, and all of it on a
		// machine without one.
		disk.Snapshot, disk.Overlay = false, filepath.Join(b.Scratch, "disk.qcow2")
	}
	vm.Drives = append([]qemu.Drive{disk}, volumeDrives(b)...)
	vm.Shares, vm.RunAs = qemuShares(b.Shares, vm.RunAs)
	if vm.Machine == qemu.MicroVM || (vm.Machine == qemu.Virt && g.UEFI == "") {
		vm.Kernel = g.Kernel.Kernel
	}
	return vm, nil
}

// prepare implements Guest: a disk the guest writes to carries no exit
// record from an earlier run; an overlay is made fresh, but for one that
// is the image (SharedParts), new from its build.
func (g *nanosGuest) prepare(vm qemu.VM) error {
	if len(vm.Drives) == 0 {
		return nil
	}
	d := vm.Drives[0]
	switch {
	case d.Image:
		// The image is its overlay, made once for one boot.
		return nil
	case d.Overlay != "":
		st, err := os.Stat(d.File)
		if err != nil {
			return goerrors.Wrap(err, 0)
		}
		return qemu.CreateOverlay(d.Overlay, st.Size())
	}
	f, err := os.OpenFile(d.File, os.O_RDWR, 0)
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	defer f.Close()
	at, err := g.klogOffset()
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(make([]byte, opsfs.KlogSize), at); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// klogOffset is where the disk's klog area lies.
func (g *nanosGuest) klogOffset() (int64, error) {
	bl, err := g.Kernel.bootLoader()
	if err != nil {
		return 0, err
	}
	return bl.KlogOffset(), nil
}

// exitCode implements Guest: QEMU's exit device gives the code, or on a
// machine without one (arm64) the disk's exit record: none is an exit
// code of 0. The device carries the code's low 7 bits (QEMU exits with
// code<<1 | 1); a non-zero code's record, when it agrees with them, gives
// the rest (a program's exit(255), or -1, is 255, not 127).
func (g *nanosGuest) exitCode(vm qemu.VM, res *qemu.Result) (int, error) {
	if len(vm.Drives) > 0 && !vm.DebugExit && res.Status == 0 && res.NetFailed == "" && !res.StartFailed() {
		code, _, err := g.exitRecord(vm)
		return code, err
	}
	code, err := res.GuestExitCode()
	if err == nil && code != 0 && vm.DebugExit && len(vm.Drives) > 0 {
		if full, ok, _ := g.exitRecord(vm); ok && full&0x7f == code {
			return full, nil
		}
	}
	return code, err
}

// exitRecord reads the exit record Nanos left on the boot's disk, through
// its overlay when it has one; ok is false when there is none.
func (g *nanosGuest) exitRecord(vm qemu.VM) (code int, ok bool, err error) {
	at, err := g.klogOffset()
	if err != nil {
		return 0, false, err
	}
	d := vm.Drives[0]
	disk, err := os.Open(d.File)
	if err != nil {
		return 0, false, goerrors.Wrap(err, 0)
	}
	defer disk.Close()
	rec := make([]byte, 16)
	if d.Overlay != "" {
		ov, err := os.Open(d.Overlay)
		if err != nil {
			return 0, false, goerrors.Wrap(err, 0)
		}
		defer ov.Close()
		err = qemu.ReadOverlay(ov, disk, at, rec)
		if err != nil {
			return 0, false, fmt.Errorf("reading the exit record: %w", err)
		}
	} else if _, err := disk.ReadAt(rec, at); err != nil {
		return 0, false, goerrors.Wrap(err, 0)
	}
	code, ok = opsfs.ParseKlog(rec)
	return code, ok, nil
}

// nanosManifest is the typed manifest that goes into the root filesystem's
// root tuple. Passthrough keys are copied as given.
type nanosManifest struct {
	Program     string
	Arguments   []string
	Environment []EnvVar
	Cwd         string
	DebugExit   bool
	Klibs       bool // klibs are in the boot filesystem
	Network     Network
	Mounts      map[string]string
	Passthrough map[string]any
}

// manifestFor turns a plan into the Nanos manifest for a. On amd64
// debug_exit is always set: it makes the kernel report the program's exit
// code through QEMU's isa-debug-exit device, and without it a microvm
// guest hangs at exit. On arm64 it would ask for semihosting, which only
// emulation has: the kernel powers off instead, the code in its exit
// record (nanosGuest.exitCode).
func manifestFor(p *Plan, a arch.Arch) nanosManifest {
	return nanosManifest{
		Program:     p.Program,
		Arguments:   p.Args,
		Environment: p.Env,
		Cwd:         p.Cwd,
		DebugExit:   a == arch.AMD64,
		Klibs:       len(p.Klibs) > 0,
		Network:     p.Network,
		Mounts:      p.Mounts,
		Passthrough: p.Passthrough,
	}
}

// tuple encodes the manifest as the root tuple's keys, in a fixed order.
func (m nanosManifest) tuple() (*opsfs.Tuple, error) {
	t := opsfs.NewTuple()
	t.Set("program", opsfs.String(m.Program))
	args := opsfs.Vector{}
	for _, a := range m.Arguments {
		args = append(args, opsfs.String(a))
	}
	t.Set("arguments", args)
	env := opsfs.NewTuple()
	for _, e := range m.Environment {
		env.Set(e.Name, opsfs.String(e.Value))
	}
	t.Set("environment", env)
	if m.Cwd != "" && m.Cwd != "/" {
		t.Set("cwd", opsfs.String(m.Cwd))
	}
	if m.DebugExit {
		t.Set("debug_exit", opsfs.String("t"))
	}
	if m.Klibs {
		t.Set("klibs", opsfs.String("bootfs"))
	}
	if m.Network.IP != "" {
		en1 := opsfs.NewTuple().Set("ipaddr", opsfs.String(m.Network.IP))
		if m.Network.Netmask != "" {
			en1.Set("netmask", opsfs.String(m.Network.Netmask))
		}
		if m.Network.Gateway != "" {
			en1.Set("gateway", opsfs.String(m.Network.Gateway))
		}
		t.Set("en1", en1)
	}
	if len(m.Mounts) > 0 {
		mt := opsfs.NewTuple()
		for _, k := range sortedKeys(m.Mounts) {
			mt.Set(k, opsfs.String(m.Mounts[k]))
		}
		t.Set("mounts", mt)
	}
	for _, k := range sortedKeys(m.Passthrough) {
		if k == "children" || k == "program" {
			return nil, fmt.Errorf("ManifestPassthrough: key %q is set by ops and cannot be passed through", k)
		}
		v, err := passthroughValue(m.Passthrough[k])
		if err != nil {
			return nil, fmt.Errorf("ManifestPassthrough.%s: %w", k, err)
		}
		t.Set(k, v)
	}
	return t, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// passthroughValue converts a JSON value: objects become tuples, arrays
// vectors, everything else strings (Nanos reads manifest values as strings).
func passthroughValue(v any) (opsfs.Value, error) {
	switch v := v.(type) {
	case string:
		return opsfs.String(v), nil
	case bool:
		if v {
			return opsfs.String("t"), nil
		}
		return opsfs.String("f"), nil
	case json.Number:
		return opsfs.String(v.String()), nil
	case float64:
		return opsfs.String(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case []any:
		out := opsfs.Vector{}
		for _, e := range v {
			x, err := passthroughValue(e)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case map[string]any:
		t := opsfs.NewTuple()
		for _, k := range sortedKeys(v) {
			x, err := passthroughValue(v[k])
			if err != nil {
				return nil, err
			}
			t.Set(k, x)
		}
		return t, nil
	case nil:
		return opsfs.Null{}, nil
	}
	return nil, fmt.Errorf("unsupported value %T", v)
}

// nanosKernel names the kernel files an image is made with.
type nanosKernel struct {
	Kernel  string
	Boot    string // "" for arm64: the disk starts with fs.BootStub
	KlibDir string
	Version string    // the release's, "" for files named in config.json
	Arch    arch.Arch // "" is amd64
}

func (k nanosKernel) arch() arch.Arch { return k.Arch.OrAMD64() }

// bootLoader is the disk's first sectors: the release's boot.img, or for
// arm64 the stub.
func (k nanosKernel) bootLoader() (*opsfs.BootLoader, error) {
	if k.arch() == arch.ARM64 {
		return opsfs.BootStub(), nil
	}
	bootData, err := os.ReadFile(k.Boot)
	if err != nil {
		return nil, goerrors.Wrap(fmt.Errorf("boot loader: %w", err), 0)
	}
	bl, err := opsfs.ParseBootImg(bootData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.Boot, err)
	}
	return bl, nil
}

// layoutNanos plans the whole disk: boot filesystem with /kernel (and
// /klib/*), root filesystem with the plan's tree and manifest, the files
// last names (when set) placed after the others.
func layoutNanos(p *Plan, k nanosKernel, minRoot int64, last func(*opsfs.Entry) bool) (*opsfs.NanosDisk, error) {
	bl, err := k.bootLoader()
	if err != nil {
		return nil, err
	}
	if err := release.CheckKernel(k.Kernel, k.arch()); err != nil {
		return nil, err
	}
	bootTree := opsfs.NewTree()
	st, err := os.Stat(k.Kernel)
	if err != nil {
		return nil, err
	}
	if err := bootTree.Add(opsfs.Entry{Path: "/kernel", Kind: opsfs.KindFile, Source: k.Kernel, Size: st.Size(), Info: st}); err != nil {
		return nil, err
	}
	for _, name := range p.Klibs {
		// A klib may sit in a folder (test/klib): it lands at the same
		// path under /klib, where Nanos looks for it.
		clean := path.Clean(name)
		if name == "" || clean == "." || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(name, "\\") {
			return nil, fmt.Errorf("Klibs: %q is not a klib name (a name or a relative path inside the klib folder)", name)
		}
		name = clean
		src := filepath.Join(k.KlibDir, filepath.FromSlash(name))
		st, err := os.Stat(src)
		if err != nil {
			return nil, fmt.Errorf("Klibs: klib %q not found in %s", name, k.KlibDir)
		}
		if err := bootTree.Add(opsfs.Entry{Path: "/klib/" + name, Kind: opsfs.KindFile, Source: src, Size: st.Size(), Info: st}); err != nil {
			return nil, err
		}
	}
	bootFS, err := opsfs.LayoutTFS(bootTree, nil, opsfs.TFSOptions{MinSize: opsfs.BootFSSize})
	if err != nil {
		return nil, fmt.Errorf("boot filesystem: %w", err)
	}
	if bootFS.SizeSecs*opsfs.SectorSize > opsfs.BootFSSize {
		return nil, fmt.Errorf("kernel and klibs need %d bytes, more than the %d-byte boot filesystem", bootFS.UsedBytes(), opsfs.BootFSSize)
	}
	root, err := manifestFor(p, k.arch()).tuple()
	if err != nil {
		return nil, err
	}
	rootFS, err := opsfs.LayoutTFS(p.Tree, root, opsfs.TFSOptions{Slack: opsfs.RootSlack, MinSize: minRoot, Last: last})
	if err != nil {
		return nil, fmt.Errorf("root filesystem: %w", err)
	}
	if want := volume.TFSSize(rootFS.UsedBytes(), minRoot); want > int64(rootFS.SizeSecs)*opsfs.SectorSize {
		rootFS.SizeSecs = uint64(want / opsfs.SectorSize)
	}
	return &opsfs.NanosDisk{Boot: bl, BootFS: bootFS, RootFS: rootFS}, nil
}

// ParseSize reads sizes such as "512M", "2G", "100m", "1048576".
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	unit := strings.ToUpper(strings.TrimRight(strings.TrimLeft(s, "0123456789."), " "))
	num := strings.TrimSpace(strings.TrimSuffix(strings.ToUpper(s), unit))
	switch strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I") {
	case "":
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	case "T":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q (use K, M or G)", s, unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q is not a number with an optional K, M or G", s)
	}
	return int64(f * float64(mult)), nil
}

var errLinuxUEFI = errors.New("Uefi: the Linux guest boots from an initramfs, with no disk for UEFI firmware to boot; use --guest nanos for a UEFI image")

// uefiLoader finds the UEFI loader: UefiBoot from config.json, else the
// release's bootx64.efi.
func uefiLoader(home Home, c *Config) (string, error) {
	if c.UefiBoot != "" {
		if _, err := os.Stat(c.UefiBoot); err != nil {
			return "", fmt.Errorf("UefiBoot: no UEFI loader at %s", c.UefiBoot)
		}
		return c.UefiBoot, nil
	}
	a, err := c.Target()
	if err != nil {
		return "", err
	}
	name := release.UEFILoader(a)
	rel, err := home.Releases(a).Find(c.NanosVersion)
	if err != nil {
		return "", fmt.Errorf("Uefi: no release to take %s from (%w); set UefiBoot to a %s", name, err, name)
	}
	if _, err := os.Stat(rel.UEFI); err != nil {
		return "", fmt.Errorf("Uefi: Nanos release %s has no %s; install a release that has one (ops update) or set UefiBoot", rel.Version, name)
	}
	return rel.UEFI, nil
}

// writeUEFI writes disk with an EFI System Partition holding loader in
// front of its filesystems (fs.UEFIDisk).
func writeUEFI(f *os.File, disk *opsfs.NanosDisk, loader string, a arch.Arch) error {
	b, err := os.ReadFile(loader)
	if err != nil {
		return goerrors.Wrap(fmt.Errorf("UEFI loader: %w", err), 0)
	}
	at := opsfs.ESPLoader
	if a == arch.ARM64 {
		at = opsfs.ESPLoaderARM64
	}
	esp, err := opsfs.NewESP(b, at)
	if err != nil {
		return fmt.Errorf("%s: %w", loader, err)
	}
	return (&opsfs.UEFIDisk{NanosDisk: disk, ESP: esp}).WriteTo(f)
}

// uefiMachine makes rc boot through UEFI firmware: a q35 machine (microvm
// boots the kernel directly and has no firmware to run a loader); virt
// for arm64, which takes firmware as it takes a kernel.
func uefiMachine(rc *RunConfig, a arch.Arch) error {
	if a == arch.ARM64 {
		return nil
	}
	switch rc.Machine {
	case "", qemu.Q35:
		rc.Machine = qemu.Q35
		return nil
	}
	return fmt.Errorf("--uefi boots through UEFI firmware on a q35 machine; --machine %s cannot (drop one of them)", rc.Machine)
}
