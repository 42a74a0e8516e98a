// Package guestinit is the Linux guest's side of ops: the manifest that ops
// writes into the initramfs and the init program (in ./init) that reads it.
// The Makefile builds init as a static binary into bin/, and ops embeds it
// from there (package bin).
package guestinit

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Manifest tells init what to run. It is stored as JSON at
// /.ops/manifest.json in the initramfs.
type Manifest struct {
	Program string   `json:"program"`
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	Cwd     string   `json:"cwd"`
	Modules []string `json:"modules"` // initramfs paths, in load order
	// LateModules are loaded after the program started (the power button).
	LateModules []string `json:"late_modules,omitempty"`
	// SnapshotModules are loaded at the snapshot point, when the kernel
	// command line asks for it (SnapshotArg): the channel's driver.
	SnapshotModules []string `json:"snapshot_modules,omitempty"`
	Net             Net      `json:"net"`
	Mounts          []Mount  `json:"mounts,omitempty"`
	Shares          []Share  `json:"shares,omitempty"`
	Debug           bool     `json:"debug,omitempty"`
	// OwnSerial, in an initramfs other images share (an OCI container's
	// base, lepton.SharedParts), names the disk whose contents are a cpio
	// archive (UnpackCPIO) of the image's own part: init loads Modules
	// (the disk's driver among them), unpacks it over the initramfs, and
	// reads the manifest it holds in place of this one. When the kernel
	// command line asks for the snapshot point, the own part comes on the
	// channel after the run's line instead (RunInfo.Own), so one snapshot
	// serves every image of the initramfs.
	OwnSerial string `json:"own_serial,omitempty"`
	// GiveBack are files init sends the host on the channel when the
	// program has exited (FileLine), before the exit line: an OCI
	// container's writable single-file mounts, which the host writes back
	// to the files they came from.
	GiveBack []string `json:"give_back,omitempty"`
}

// Mount is an ext4 volume init mounts before it starts the program: the
// disk whose filesystem carries Label.
type Mount struct {
	Label    string `json:"label"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"readonly,omitempty"`
}

// Share is a host folder init mounts through virtio-fs before it starts
// the program: the device whose tag is Tag. Read-only is the guest's
// mount's: the host's virtiofsd (QEMU 7.2's) has no read-only mode.
type Share struct {
	Tag      string `json:"tag"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"readonly,omitempty"`
}

// Net configures eth0.
type Net struct {
	DHCP    bool     `json:"dhcp,omitempty"` // ask a DHCP server instead of Address
	Address string   `json:"address"`        // CIDR, e.g. 10.0.2.15/24
	Gateway string   `json:"gateway"`
	DNS     []string `json:"dns"`
}

// ExitPort is the I/O port of QEMU's isa-debug-exit device. Writing code N
// there makes QEMU exit with status N<<1 | 1.
const ExitPort = 0x501

// SnapshotArg on the kernel command line makes init stop at its snapshot
// point: once the modules are loaded, before anything that differs from
// run to run, it writes SnapshotReady on the channel (the virtio-serial
// port named ChannelName) and waits for a RunInfo line, which the host
// sends to the VM it booted and to every VM restored from its saved
// state.
const (
	SnapshotArg   = "ops.snapshot=1"
	SnapshotReady = "ready\n"
	ChannelName   = "org.opsdev.ops.0"
)

// ExitChannelArg on the kernel command line makes init report the
// program's exit code on the channel (the virtio-serial port named
// ChannelName) instead of through QEMU's isa-debug-exit device, which
// arm64 machines do not have: it writes ExitLine(code) and waits (up to
// two seconds) for the host's ExitAck before it powers off, so the line
// has reached the host before QEMU ends.
const (
	ExitChannelArg = "ops.exitchan=1"
	ExitAck        = "ok\n"
)

// MaxGiveBack is the most bytes of a file init gives back (Kubernetes
// reads at most 4 KiB of a termination-log).
const MaxGiveBack = 16 << 20

// FileLine heads a file init gives back on the channel at exit: "file N
// PATH\n", then N bytes of it.
func FileLine(path string, n int) []byte {
	return fmt.Appendf(nil, "file %d %s\n", n, path)
}

// ParseFileLine reads a FileLine; false for anything else.
func ParseFileLine(line []byte) (path string, n int, ok bool) {
	s, ok := strings.CutPrefix(strings.TrimSuffix(string(line), "\n"), "file ")
	if !ok {
		return "", 0, false
	}
	num, path, ok := strings.Cut(s, " ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 || n > MaxGiveBack || !strings.HasPrefix(path, "/") {
		return "", 0, false
	}
	return path, n, true
}

// ExitLine is the line that carries the program's exit code to the host:
// "exit N\n", N in decimal.
func ExitLine(code int) []byte {
	return fmt.Appendf(nil, "exit %d\n", code)
}

// ParseExitLine reads an ExitLine, with or without its newline; false for
// anything else. The code is 0-255, an exit status or a signal's number,
// written as ExitLine writes it (no sign, no leading zeros).
func ParseExitLine(line []byte) (int, bool) {
	s, ok := strings.CutPrefix(string(line), "exit ")
	if !ok {
		return 0, false
	}
	s = strings.TrimSuffix(s, "\n")
	if s == "" || len(s) > 3 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 255 {
		return 0, false
	}
	return n, true
}

// RunInfo is what each run of a snapshot gives init: fresh entropy, which
// init adds to the kernel's pool before reseeding it (a restored guest
// would otherwise repeat the random state of every other copy), and the
// host's wall clock (a restored guest's clock stands where the snapshot
// was taken). A guest booted from a shared initramfs (Manifest.OwnSerial)
// also gets the image's own part, a cpio archive of Own bytes that follow
// the line, and its network card's MAC, which a restored card does not
// have (it is the saved guest's).
type RunInfo struct {
	Seed []byte
	Time int64 // ns since the Unix epoch
	Own  int64 // bytes of the own part after the line
	MAC  string
}

// runInfoSeed is the seed's size in bytes.
const runInfoSeed = 64

// Line is the RunInfo as the host sends it: "ops-run TIME SEED[ OWN
// MAC]\n", the time in decimal, the seed in hex, the own part's length in
// decimal and the MAC ("-" for none). A restored guest runs every line
// of code it executes through the emulator's translator anew, so init
// parses it with a few lines of its own rather than encoding/json.
func (r RunInfo) Line() []byte {
	if r.Own == 0 && r.MAC == "" {
		return fmt.Appendf(nil, "ops-run %d %s\n", r.Time, hex.EncodeToString(r.Seed))
	}
	mac := r.MAC
	if mac == "" {
		mac = "-"
	}
	return fmt.Appendf(nil, "ops-run %d %s %d %s\n", r.Time, hex.EncodeToString(r.Seed), r.Own, mac)
}

// ParseRunInfo reads a Line.
func ParseRunInfo(line []byte) (RunInfo, error) {
	f := strings.Fields(string(line))
	if (len(f) != 3 && len(f) != 5) || f[0] != "ops-run" {
		return RunInfo{}, fmt.Errorf("not a run line: %.40q", line)
	}
	t, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || t < 0 {
		return RunInfo{}, fmt.Errorf("bad time %.30q", f[1])
	}
	seed, err := hex.DecodeString(f[2])
	if err != nil || len(seed) != runInfoSeed {
		return RunInfo{}, fmt.Errorf("bad seed (%d bytes)", len(seed))
	}
	info := RunInfo{Seed: seed, Time: t}
	if len(f) == 5 {
		if info.Own, err = strconv.ParseInt(f[3], 10, 64); err != nil || info.Own < 0 || info.Own > 1<<30 {
			return RunInfo{}, fmt.Errorf("bad own part length %.30q", f[3])
		}
		if f[4] != "-" {
			if _, err := net.ParseMAC(f[4]); err != nil {
				return RunInfo{}, fmt.Errorf("bad MAC %.30q", f[4])
			}
			info.MAC = f[4]
		}
	}
	return info, nil
}

// NewRunInfo is a RunInfo with the seed read from random and the time t.
func NewRunInfo(random io.Reader, t time.Time) (RunInfo, error) {
	seed := make([]byte, runInfoSeed)
	if _, err := io.ReadFull(random, seed); err != nil {
		return RunInfo{}, err
	}
	return RunInfo{Seed: seed, Time: t.UnixNano()}, nil
}

// ManifestPathInGuest is where init finds the manifest.
const ManifestPathInGuest = "/.ops/manifest.json"
