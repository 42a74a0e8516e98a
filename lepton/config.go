// Package lepton is the core of ops: configuration, ELF dependencies, the
// image plan, image builders for each guest, kernel releases and the ops
// home folder.
package lepton

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"github.com/opsdev/ops/internal/editdist"
	"github.com/opsdev/ops/volume"
)

// Config is config.json: the keys nanovms/ops users already write. Keys
// match case-insensitively; unknown keys are an error.
type Config struct {
	Program             string
	Args                []string
	Env                 map[string]string
	Files               []string
	Dirs                []string
	MapDirs             map[string]string
	NameServers         []string
	Mounts              map[string]string
	TargetRoot          string
	ManifestPassthrough map[string]any
	Kernel              string
	Boot                string
	Klibs               []string
	KlibDir             string
	NanosVersion        string
	Uefi                bool
	BaseVolumeSz        string
	CwdPath             string `json:"Cwd"`
	Argv0               string // argv[0] of the program (default: the program as typed)
	Hostname            string // the guest's host name (default: from the image name)
	NoDefaults          bool   // add none of the files and variables ops adds by default
	Guest               string // "nanos" or "linux"
	Arch                string // the target architecture: amd64 or arm64 (x86_64, aarch64); "" is this machine's
	LinuxKernel         string // a vmlinuz or vmlinux for the Linux guest
	Version             string // package manifests carry it
	Language            string
	Description         string
	DisableArgsCopy     bool // packages: do not copy Args[1] from the current folder
	PackageBaseURL      string
	PackageManifestURL  string
	RunConfig           RunConfig

	UefiBoot                  string
	Debugflags                []string // Nanos manifest options set to "t" (trace, syscall_summary, ...)
	NoTrace                   []string // syscalls the strace klib does not trace
	RebootOnExit              bool     // Nanos restarts the program's VM when it exits with a code other than 0
	Force                     bool     // rebuild the image even when nothing changed
	NightlyBuild              bool     // refused, saying what is needed (CheckNightly)
	LocalFilesParentDirectory string   // MapDirs patterns start here (default: the config file's folder)

	// Keys nanovms/ops reads that mean nothing for a local VM here (cloud
	// providers, build folders, ...): accepted so existing config files
	// keep working, and named in one warning when set (Ignored).
	BuildDir     string
	CloudConfig  json.RawMessage
	TargetConfig map[string]string
	Home         string
	ProgramPath  string
	TFSv4        bool
	VolumesDir   string
}

// RunConfig holds how the VM runs.
type RunConfig struct {
	Accel        *bool
	CPUs         int
	Memory       string
	Ports        []string
	UDPPorts     []string
	Bridged      bool
	BridgeName   string
	TapName      string
	IPAddress    string
	NetMask      string
	Gateway      string
	ImageName    string
	InstanceName string
	Verbose      bool
	Background   bool
	QMP          bool
	GdbPort      int
	Debug        bool
	Machine      string // "microvm" (fast, default) or "q35" (whole disk, BIOS)
	DHCP         bool   // the Linux guest asks DHCP for its address (Nanos does unless given IPAddress)
	Sandbox      *bool  // QEMU's seccomp sandbox (default on; false turns it off)
	// Snapshot (default on) starts a Linux guest from the state its first
	// run saved at init's snapshot point, when nothing it depends on has
	// changed; false boots it cold every time (--no-snapshot).
	Snapshot *bool
	// HostLoopback gives a user-mode guest QEMU's own network (slirp), on
	// which 10.0.2.2 is the host's 127.0.0.1; by default the guest's
	// network is passt's, which does not reach the host's loopback.
	HostLoopback bool
	Reboot       bool `json:"-"` // QEMU lets the guest reset (set from RebootOnExit)

	// Accepted for compatibility with nanovms/ops config files; acted on:
	// BridgeIPAddress (--bridgeipaddress), Mgmt (the QMP port),
	// ShowDebug, ShowWarnings, ShowErrors. The others are named by Ignored.
	AtExit                       string
	BridgeIPAddress              string
	CanIPForward                 bool
	GPUs                         int
	GPUType                      string
	IPv6Address                  string
	InstanceGroup                string
	Kernel                       string
	Mgmt                         string
	Vga                          bool
	VirtfsShares                 map[string]string
	Mounts                       []string
	AttachVolumeOnInstanceCreate bool
	Nics                         json.RawMessage
	BackgroundDetach             bool
	ShowDebug                    bool
	ShowErrors                   bool
	ShowWarnings                 bool
	JSON                         bool
	VolumeSizeInGb               int
	ThreadsPerCore               int64
}

// AddMount adds a volume mount written VOLUME:/path[:ro] (--mounts) to
// Mounts, where config.json writes it {"VOLUME": "/path[:ro]"}.
func (c *Config) AddMount(spec string) error {
	name, p, ro, err := volume.ParseMount(spec)
	if err != nil {
		return err
	}
	if c.Mounts == nil {
		c.Mounts = map[string]string{}
	}
	if ro {
		p += ":ro"
	}
	c.Mounts[name] = p
	return nil
}

// renderEnv is the variable that, set to "true", makes LoadConfig expand
// $VAR and ${VAR} in config files from the environment, as nanovms/ops does.
const renderEnv = "ops_render_config"

// LoadConfig reads a config file. An empty path gives the zero config.
// With ops_render_config=true in the environment, $VAR and ${VAR} are
// expanded first. MapDirs patterns start from the file's folder unless
// LocalFilesParentDirectory says otherwise.
func LoadConfig(path string) (*Config, error) {
	c := &Config{}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if os.Getenv(renderEnv) == "true" {
		b = []byte(os.ExpandEnv(string(b)))
	}
	if err := decodeConfig(b, c); err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	dir := filepath.Dir(path)
	switch {
	case c.LocalFilesParentDirectory == "":
		c.LocalFilesParentDirectory = dir
	case !filepath.IsAbs(c.LocalFilesParentDirectory):
		c.LocalFilesParentDirectory = filepath.Join(dir, c.LocalFilesParentDirectory)
	}
	return c, nil
}

// decodeConfig decodes a config document strictly into c. Errors start
// with the line number ("12: ...") so callers can prefix the file name.
func decodeConfig(b []byte, c *Config) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	d.UseNumber()
	if err := d.Decode(c); err != nil {
		return describeJSONError(b, err)
	}
	if d.More() {
		return fmt.Errorf("%d: unexpected data after the JSON object", lineAt(b, int(d.InputOffset())))
	}
	if err := CheckGuestName(c.Guest); err != nil {
		return fmt.Errorf("%d: Guest: %w", lineOf(b, "Guest"), err)
	}
	for _, m := range c.RunConfig.Mounts {
		if err := c.AddMount(m); err != nil {
			return fmt.Errorf("%d: RunConfig.Mounts: %w", lineOf(b, "Mounts"), err)
		}
	}
	if err := c.checkDebugFlags(); err != nil {
		return fmt.Errorf("%d: %w", lineOf(b, strings.SplitN(err.Error(), ":", 2)[0]), err)
	}
	return nil
}

var unknownField = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`unknown field "([^"]*)"`) })

func describeJSONError(b []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("%d: invalid JSON: %v", lineAt(b, int(se.Offset)), se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "the document"
		}
		return fmt.Errorf("%d: %s must be %s, not a JSON %s", lineAt(b, int(te.Offset)), field, jsonKind(te.Type.String()), te.Value)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("1: the file is empty; write {} for no settings")
	}
	if m := unknownField().FindStringSubmatch(err.Error()); m != nil {
		if near := nearestKey(m[1]); near != "" {
			return fmt.Errorf("%d: unknown key %q: did you mean %q? (the README's config.json table lists the keys)", lineOf(b, m[1]), m[1], near)
		}
		return fmt.Errorf("%d: unknown key %q (the README's config.json table lists the keys)", lineOf(b, m[1]), m[1])
	}
	return fmt.Errorf("1: %v", err)
}

// nearestKey is the config.json key (of Config or a struct within it)
// nearest to an unknown one, "" when none is within two edits of it.
func nearestKey(unknown string) string {
	var keys []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			keys = append(keys, name)
			walk(f.Type)
		}
	}
	walk(reflect.TypeOf(Config{}))
	best, bestD := "", 3
	for _, k := range keys {
		if d := editdist.Distance(strings.ToLower(unknown), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	case goType == "string":
		return "a string"
	case goType == "bool", goType == "*bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	}
	return "a " + goType
}

// lineAt is the 1-based line of byte offset off.
func lineAt(b []byte, off int) int {
	if off > len(b) {
		off = len(b)
	}
	return bytes.Count(b[:off], []byte{'\n'}) + 1
}

// lineOf is the line of the first key named key (case-insensitively).
func lineOf(b []byte, key string) int {
	re := regexp.MustCompile(`(?i)"` + regexp.QuoteMeta(key) + `"\s*:`)
	if loc := re.FindIndex(b); loc != nil {
		return lineAt(b, loc[0])
	}
	return 1
}
