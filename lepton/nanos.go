package lepton

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	goerrors "github.com/go-errors/errors"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/release"
	"github.com/opsdev/ops/volume"
)

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

// manifestFor turns a plan into the Nanos manifest. debug_exit is always
// set: it makes the kernel report the program's exit code through QEMU's
// isa-debug-exit device, and without it a microvm guest hangs at exit.
func manifestFor(p *Plan) nanosManifest {
	return nanosManifest{
		Program:     p.Program,
		Arguments:   p.Args,
		Environment: p.Env,
		Cwd:         p.Cwd,
		DebugExit:   true,
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
	Boot    string
	KlibDir string
	Version string // the release's, "" for files named in config.json
}

// layoutNanos plans the whole disk: boot filesystem with /kernel (and
// /klib/*), root filesystem with the plan's tree and manifest.
func layoutNanos(p *Plan, k nanosKernel, minRoot int64) (*opsfs.NanosDisk, error) {
	bootData, err := os.ReadFile(k.Boot)
	if err != nil {
		return nil, goerrors.Wrap(fmt.Errorf("boot loader: %w", err), 0)
	}
	bl, err := opsfs.ParseBootImg(bootData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.Boot, err)
	}
	if err := release.CheckKernel(k.Kernel); err != nil {
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
	root, err := manifestFor(p).tuple()
	if err != nil {
		return nil, err
	}
	rootFS, err := opsfs.LayoutTFS(p.Tree, root, opsfs.TFSOptions{Slack: opsfs.RootSlack, MinSize: minRoot})
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
