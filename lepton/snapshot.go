package lepton

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opsdev/ops/guestinit"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/qemu"
)

// Snapshots. A guest whose VM has a channel (the Linux guest) stops at
// its init's snapshot point in every run and waits for ops. The first run
// of an image saves the VM there (QEMU's migration stream: the devices
// and the memory) and goes on; every later run whose VM would be exactly
// the same starts from that state instead of booting. Either way ops then
// sends init what is this run's own: fresh entropy and the wall clock.
//
// A snapshot is kept beside its image's name in the ops home's
// snapshots folder: NAME.state and NAME.json, which records the key (a
// hash of QEMU's command line and of every file it names, QEMU's binary
// included) and the state's size and checksum. A snapshot whose key
// differs, or whose file is not the one recorded, is not used: the run
// boots cold and saves a new one.

// snapshotVersion changes when what a snapshot holds changes meaning.
const snapshotVersion = "ops-snapshot 1"

// snapshot is where an image's snapshot is kept, and the key a VM must
// have to start from it.
type snapshot struct {
	state, meta string
	key         string
}

// snapshotMeta is NAME.json.
type snapshotMeta struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

// withoutTSC is a kernel command line less its tsc_early_khz= word.
func withoutTSC(cmdline string) string {
	words := strings.Fields(cmdline)
	return strings.Join(slices.DeleteFunc(words, func(w string) bool { return strings.HasPrefix(w, "tsc_early_khz=") }), " ")
}

// snapshots reports whether this machine's runs stop at the snapshot
// point: asked for (the default), an image in the ops home, no volumes
// (their contents change between runs while the guest's caches of them
// would not), no shared folders (a vhost-user device, virtio-fs's, cannot
// be saved), no debugger.
func (m *Machine) snapshots() bool {
	rc := m.RunConfig
	return m.Home.Dir != "" && (rc.Snapshot == nil || *rc.Snapshot) && len(m.Built.Mounts) == 0 && len(m.Built.Shares) == 0 &&
		rc.GdbPort == 0 && !rc.Debug && (filepath.Dir(m.Built.Path) == m.Home.imagesDir() || keptBase(m.Built.Base))
}

// keptBase reports whether base is a shared base kept for other images
// (linked from a bases folder): one written for its image alone serves
// no other, and a snapshot of it would only cost its run the saving.
func keptBase(base string) bool {
	if base == "" {
		return false
	}
	st, err := os.Stat(base)
	return err == nil && linkCount(st) > 1
}

// snapshotFor is the snapshot a VM described with a channel would use:
// its image's, or for an image over a shared base (SharedParts) the
// base's, which serves every image of it whose VM is the same but for its
// network card's MAC (init is given its own after the restore, with the
// image's own part).
func (m *Machine) snapshotFor(vm qemu.VM) (*snapshot, error) {
	base := ""
	if m.ownOnChannel(vm) != "" {
		base = m.Built.Base
	}
	key, err := snapshotKey(vm, base)
	if err != nil {
		return nil, err
	}
	s := m.Home.snapshotOf(m.Built.Path)
	if base != "" {
		s = m.Home.snapshotOf(sharedSnapshotPrefix + key[:32])
	}
	s.key = key
	return s, nil
}

// ownOnChannel is the image whose own part init takes on the channel
// past the snapshot point: an image over a shared base that the VM boots
// with a snapshot point (linuxGuest.VM), else "".
func (m *Machine) ownOnChannel(vm qemu.VM) string {
	if m.Built == nil || m.Built.BuildResult == nil || m.Built.Base == "" || vm.Initrd != m.Built.Base || !strings.Contains(vm.Append, guestinit.SnapshotArg) {
		return ""
	}
	return m.Built.Path
}

// sharedSnapshotPrefix starts the names of the snapshots of shared bases
// in the snapshots folder; keepSharedSnapshots of them are kept, the most
// recently saved. The images' own snapshots are kept, the most recently
// saved or restored first, while they take imageSnapshotBudget bytes
// together (the one just saved always): each holds the guest's memory,
// 60-250 MB, and a home that ran many images filled its disk with them.
const (
	sharedSnapshotPrefix = "shared-"
	keepSharedSnapshots  = 2
	imageSnapshotBudget  = 2 << 30
)

// savedSnapshot is a snapshot in the snapshots folder, when its record
// was last written or used, and its state's size.
type savedSnapshot struct {
	s    *snapshot
	at   time.Time
	size int64
}

// savedSnapshots lists the shared bases' snapshots (shared) or the
// images' own, most recently written or used record first.
func (h Home) savedSnapshots(shared bool) []savedSnapshot {
	ents, err := os.ReadDir(h.snapshotsDir())
	if err != nil {
		return nil
	}
	var all []savedSnapshot
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") || strings.HasPrefix(name, sharedSnapshotPrefix) != shared {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		s := h.snapshotOf(name)
		var size int64
		if st, err := os.Stat(s.state); err == nil {
			size = st.Size()
		}
		all = append(all, savedSnapshot{s, info.ModTime(), size})
	}
	slices.SortFunc(all, func(a, b savedSnapshot) int { return b.at.Compare(a.at) })
	return all
}

// pruneSharedSnapshots removes the snapshots of shared bases beyond the
// keepSharedSnapshots most recently saved, their lock files too (one is
// made for each base ever saved); a failure only leaves one, and so does a
// save of it under way.
func (h Home) pruneSharedSnapshots() {
	all := h.savedSnapshots(true)
	for _, old := range all[min(keepSharedSnapshots, len(all)):] {
		old.s.discard()
	}
}

// pruneImageSnapshots removes the images' own snapshots beyond
// imageSnapshotBudget bytes, the least recently saved or restored first;
// kept, the one just saved, stays whatever its size. An image whose
// snapshot went boots cold next time and saves it again.
func (h Home) pruneImageSnapshots(kept *snapshot) {
	var total int64
	for _, sv := range h.savedSnapshots(false) {
		if sv.s.state == kept.state {
			total += sv.size
			continue
		}
		if total+sv.size <= imageSnapshotBudget {
			total += sv.size
			continue
		}
		sv.s.discard()
	}
}

// used marks the snapshot as restored now, for pruneImageSnapshots.
func (s *snapshot) used() {
	now := time.Now()
	_ = os.Chtimes(s.meta, now, now)
}

// discard removes the snapshot and its lock file, unless a run holds the
// lock (it is saving the snapshot again).
func (s *snapshot) discard() {
	lock := lockPath(s.state)
	unlock, err := fileutil.TryLock(lock)
	if err != nil {
		return
	}
	defer unlock()
	s.remove()
	_ = fileutil.RemoveLocked(lock)
}

// snapshotOf is where the snapshot of the image at path is kept.
func (h Home) snapshotOf(image string) *snapshot {
	base := filepath.Join(h.snapshotsDir(), filepath.Base(image))
	return &snapshot{state: base + ".state", meta: base + ".json"}
}

// snapshotKey is a hash of everything the saved state depends on: QEMU's
// command line (machine, devices and their order, memory, CPUs,
// accelerator, kernel and its command line, the image), and the size,
// time and inode of QEMU's binary and of each file the command line
// names.
func snapshotKey(vm qemu.VM, base string) (string, error) {
	// Where the state comes from and where QEMU's monitor listens are no
	// part of the VM, and neither is the TSC rate a booting guest is told
	// (it spares the boot a calibration; a restored guest is past it), which
	// on a host that scales its clock reads differently from run to run.
	vm.Incoming, vm.QMP = "", ""
	vm.Append = withoutTSC(vm.Append)
	if base != "" {
		// The initramfs every image of a shared base boots, whatever the
		// name of the image's link to it, and the card's MAC, which init
		// is told past the restore.
		vm.Net.MAC = ""
		if vm.Initrd == base {
			st, err := os.Stat(base)
			if err != nil {
				return "", err
			}
			vm.Initrd = "shared-base-" + fileutil.Stamp(st)
		}
	}
	argv, err := vm.Args()
	if err != nil {
		return "", err
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", snapshotVersion, strings.Join(argv, "\x00"))
	initrd := vm.Initrd
	if base != "" {
		initrd = "" // named by its stamp above
	}
	files := []string{bin, vm.Kernel, initrd, vm.Firmware}
	for _, d := range vm.Drives {
		files = append(files, d.File)
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %s\n", f, fileutil.Stamp(st))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// usable reports whether the snapshot holds a state for its key: its
// record names the key and its file has the recorded size (the checksum
// is checked while QEMU restores: check). damaged says why a snapshot
// that is there cannot be used (a record unreadable, a file missing or
// cut short); one made for another key (the image, kernel or QEMU
// changed since) is replaced without a word.
func (s *snapshot) usable() (meta snapshotMeta, ok bool, damaged error) {
	b, err := os.ReadFile(s.meta)
	if errors.Is(err, os.ErrNotExist) {
		return meta, false, nil
	}
	if err != nil {
		return meta, false, err
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return meta, false, fmt.Errorf("its record %s: %w", s.meta, err)
	}
	if meta.Key != s.key {
		return meta, false, nil
	}
	st, err := os.Stat(s.state)
	if err != nil {
		return meta, false, err
	}
	if st.Size() != meta.Size {
		return meta, false, fmt.Errorf("its file %s holds %d bytes, not the %d saved", s.state, st.Size(), meta.Size)
	}
	return meta, true, nil
}

// check reads the state in f (from its start, whatever else reads f)
// and compares its checksum with the record's.
func check(f *os.File, meta snapshotMeta) error {
	sum, n, err := crcOf(io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return err
	}
	if n != meta.Size || sum != meta.CRC32C {
		return fmt.Errorf("its file %s is not the one saved (checksum %08x, saved %08x)", f.Name(), sum, meta.CRC32C)
	}
	return nil
}

// restoreFailed reports whether QEMU's error says it could not load an
// incoming state (rather than failing to start for another reason).
func restoreFailed(qemuErr string) bool {
	for _, s := range []string{"migration", "load of", "loading state", "ramblock", "RAM block", "vmstate", "incoming"} {
		if strings.Contains(qemuErr, s) {
			return true
		}
	}
	return false
}

// crcOf is the CRC-32C of r and its length. crc32 makes the Castagnoli
// table on the first MakeTable (~1.3M instructions with SSE 4.2) and hands
// the same one out after, so asking here, not in a package variable, keeps
// that off every command's start.
func crcOf(r io.Reader) (uint32, int64, error) {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.CopyBuffer(h, r, make([]byte, 1<<20))
	return h.Sum32(), n, err
}

// remove deletes the snapshot.
func (s *snapshot) remove() {
	os.Remove(s.meta)
	os.Remove(s.state)
}

// removeIf deletes the snapshot if its state is still the file f (not one
// a concurrent save has put in its place since).
func (s *snapshot) removeIf(f *os.File) {
	held, err1 := f.Stat()
	now, err2 := os.Stat(s.state)
	if err1 == nil && err2 == nil && os.SameFile(held, now) {
		s.remove()
	}
}

// save has the VM (its QMP socket) write its state into a temporary file
// beside the snapshot, then records it: the state renamed into place,
// then its record. A run that finds another saving the same snapshot
// leaves it to that one.
func (s *snapshot) save(qmpSocket string) error {
	dir := filepath.Dir(s.state)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := fileutil.TryLock(lockPath(s.state))
	if errors.Is(err, fileutil.ErrLocked) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	_ = fileutil.ClearStale(dir)
	tmp, err := fileutil.CreateTemp(dir, filepath.Base(s.state))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := qemu.SaveState(qmpSocket, tmp, time.Minute); err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	sum, n, err := crcOf(tmp)
	if err != nil {
		return err
	}
	os.Remove(s.meta) // no record names a state being replaced
	if err := os.Rename(tmp.Name(), s.state); err != nil {
		return err
	}
	b, err := json.Marshal(snapshotMeta{Key: s.key, Size: n, CRC32C: sum})
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(s.meta, b, 0o644)
}

// runInfo is this run's line for init: fresh entropy from the host, and
// the host's clock as it is sent; with an image's own part of own bytes
// to follow, its length and the network card's MAC.
func runInfo(own int64, mac string) ([]byte, error) {
	info, err := guestinit.NewRunInfo(rand.Reader, time.Now())
	if err != nil {
		return nil, err
	}
	if own > 0 {
		info.Own, info.MAC = own, mac
	}
	return info.Line(), nil
}

// errNoReady means the guest's channel closed before init said it was
// at its snapshot point (the VM stopped first).
var errNoReady = errors.New("the guest did not reach its snapshot point")

// awaitReady reads the channel until init's ready line.
func awaitReady(ch io.Reader) error {
	want := guestinit.SnapshotReady
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(ch, buf); err != nil {
		return errNoReady
	}
	if string(buf) != want {
		return fmt.Errorf("the guest's channel said %q, not %q", buf, want)
	}
	return nil
}

// snapshotSize is the size of the snapshot kept for the image at path
// (0: none).
func (h Home) snapshotSize(path string) int64 {
	st, err := os.Stat(h.snapshotOf(path).state)
	if err != nil {
		return 0
	}
	return st.Size()
}

// deleteSnapshot removes the snapshot kept for the image at path, and
// its lock.
func (h Home) deleteSnapshot(image string) {
	s := h.snapshotOf(image)
	s.remove()
	os.Remove(lockPath(s.state))
}
