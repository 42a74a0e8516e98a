package ociruntime

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/cgroup"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/internal/proc"
	"github.com/opsdev/ops/lepton"
)

// The statuses of the runtime-spec.
const (
	Creating = "creating"
	Created  = "created"
	Running  = "running"
	Stopped  = "stopped"
)

// Store is the runtime's root: a folder per container ID holding
// state.json (written atomically), a lock file taken by every command
// that changes the container, the image, and the start fifo.
type Store struct{ Root string }

// record is what state.json holds: the runtime-spec's state and what ops
// needs to boot, stop and remove the container.
type record struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Status      string            `json:"status"`

	// The supervisor (the container's pid) and QEMU, each with its start
	// time, so a reused PID is not taken for them.
	Supervisor      int    `json:"supervisor,omitempty"`
	SupervisorStart uint64 `json:"supervisorStart,omitempty"`
	QEMU            int    `json:"qemu,omitempty"`
	QEMUStart       uint64 `json:"qemuStart,omitempty"`

	// What the supervisor boots.
	Home    string  `json:"home,omitempty"`  // the ops home
	Image   string  `json:"image,omitempty"` // the image, in the container's folder
	Guest   string  `json:"guest,omitempty"` // "nanos" or "linux"
	Network Network `json:"network"`
	// Netns is the network namespace the container joined (the spec's
	// path: an engine's or a pod's), where delete removes what a killed
	// VM left; "" for one of its own, which goes with the supervisor.
	Netns  string        `json:"netns,omitempty"`
	Config lepton.Config `json:"config"` // what the image was built with
	// Cgroup is the container's cgroup (relative to the root), which QEMU
	// is placed in with Limits; "" for none.
	Cgroup string        `json:"cgroup,omitempty"`
	Limits cgroup.Limits `json:"limits"`

	// GiveBack are writable files the guest's writes are copied back to
	// when the program exits (imageMounts.GiveBack).
	GiveBack []lepton.Layer `json:"giveBack,omitempty"`

	Poststart []Hook `json:"poststart,omitempty"`
	Poststop  []Hook `json:"poststop,omitempty"`

	ExitCode *int   `json:"exitCode,omitempty"`
	Error    string `json:"error,omitempty"` // why the boot failed
}

// State is the runtime-spec's state of a container, as `state` prints it.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs,omitempty"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// idPattern is the IDs runc accepts.
var idPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\w+\-.]+$`) })

// CheckID refuses an ID that cannot name a folder.
func CheckID(id string) error {
	if id == "" {
		return errors.New("no container ID given")
	}
	if !idPattern().MatchString(id) || id == "." || id == ".." || len(id) > 1024 {
		return fmt.Errorf("container ID %q: use letters, digits and + - . _ only", id)
	}
	return nil
}

// basesFolder, beside the containers' folders, holds the bases their Nanos
// images are overlays over (lepton.SharedParts): on their filesystem, so
// each image links its own. Like delegatedDir, it is no container ID.
const basesFolder = "@bases"

func (s Store) dir(id string) string       { return filepath.Join(s.Root, id) }
func (s Store) basesDir() string           { return filepath.Join(s.Root, basesFolder) }
func (s Store) stateFile(id string) string { return filepath.Join(s.dir(id), "state.json") }
func (s Store) lockFile(id string) string  { return filepath.Join(s.dir(id), "lock") }
func (s Store) fifo(id string) string      { return filepath.Join(s.dir(id), "start.fifo") }

// qmpSocket is QEMU's control socket: in the container's folder, unless
// that path is too long for a socket (108 bytes, a deep --root), then in
// a folder in the temporary folder named after it, which remove removes
// too.
func (s Store) qmpSocket(id string) string {
	p := filepath.Join(s.dir(id), "qmp")
	if len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(s.dir(id)))
	return filepath.Join(os.TempDir(), "ops-runtime-"+hex.EncodeToString(sum[:8]), "qmp")
}

// errNotExist is the error for an unknown ID: engines read "does not
// exist" as NotFound.
func errNotExist(id string) error { return fmt.Errorf("container %s does not exist", id) }

// make claims id: a new folder, locked; an ID in use is an error.
func (s Store) make(id string) (unlock func(), err error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Root, 0o711); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	// The container's own: its image holds the root filesystem's files
	// (QEMU, unprivileged, is handed descriptors, never paths).
	if err := os.Mkdir(s.dir(id), 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container ID %s already exists", id)
		}
		return nil, goerrors.Wrap(err, 0)
	}
	return s.lock(id)
}

// lock takes the container's lock, waiting for another command to end.
func (s Store) lock(id string) (unlock func(), err error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.dir(id)); err != nil {
		return nil, errNotExist(id)
	}
	unlock, err = fileutil.Lock(s.lockFile(id))
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	if _, err := os.Stat(s.dir(id)); err != nil { // deleted while we waited
		unlock()
		return nil, errNotExist(id)
	}
	return unlock, nil
}

// load reads the container's record; a folder without one is a create
// that has not got that far (or died before): creating.
func (s Store) load(id string) (*record, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.stateFile(id))
	if errors.Is(err, os.ErrNotExist) {
		if _, derr := os.Stat(s.dir(id)); derr != nil {
			return nil, errNotExist(id)
		}
		return &record{ID: id, Status: Creating}, nil
	}
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", s.stateFile(id), err)
	}
	return &r, nil
}

// save writes the record atomically; the caller holds the lock.
func (s Store) save(r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := fileutil.WriteAtomic(s.stateFile(r.ID), append(b, '\n'), 0o600); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// update changes the record under the container's lock.
func (s Store) update(id string, change func(r *record)) error {
	unlock, err := s.lock(id)
	if err != nil {
		return err
	}
	defer unlock()
	r, err := s.load(id)
	if err != nil {
		return err
	}
	change(r)
	return s.save(r)
}

// remove deletes the container's folder.
func (s Store) remove(id string) error {
	if q := filepath.Dir(s.qmpSocket(id)); q != s.dir(id) {
		os.RemoveAll(q)
	}
	if err := fileutil.RemoveAll(s.dir(id)); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// List is the IDs of the containers in the store.
func (s Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && CheckID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// supervisorAlive reports whether the record's supervisor still runs.
func (r *record) supervisorAlive() bool {
	return r.Supervisor > 0 && proc.Alive(r.Supervisor, r.SupervisorStart)
}

func (r *record) qemuAlive() bool { return r.QEMU > 0 && proc.Alive(r.QEMU, r.QEMUStart) }

// status is the container's status now: the recorded one, unless its
// supervisor has gone, which makes it stopped.
func (r *record) status() string {
	switch r.Status {
	case Created, Running:
		if !r.supervisorAlive() {
			return Stopped
		}
	case Creating:
		if r.Supervisor != 0 && !r.supervisorAlive() {
			return Stopped
		}
	}
	return r.Status
}

// state is the runtime-spec's view of the record.
func (r *record) state() State {
	st := State{OCIVersion: SpecVersion, ID: r.ID, Status: r.status(), Bundle: r.Bundle, Rootfs: r.Rootfs,
		Created: r.Created, Annotations: r.Annotations}
	if st.Status != Stopped {
		st.Pid = r.Supervisor
	}
	return st
}
