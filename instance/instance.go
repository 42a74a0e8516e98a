// Package instance keeps unikernels running in the background: each
// instance has a supervisor process of its own (no daemon) that owns QEMU,
// writes the console to a log, records its state in files, and restarts
// the guest by its policy. Every state change is a file written atomically
// under <ops home>/instances/<name>/, so listing reads files and asks no
// process.
package instance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/internal/proc"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
)

// Spec is what an instance runs: a built image, the config it boots with
// (ports, memory, volumes, the guest), and its restart policy.
type Spec struct {
	Name    string        `json:"name"`
	Image   string        `json:"image"` // path of the built image
	Config  lepton.Config `json:"config"`
	Restart Policy        `json:"restart"`
	Created time.Time     `json:"created"`
	// Net replaces the network the config describes: compose's services
	// reach each other through forwards of their own.
	Net *qemu.Net `json:"net,omitempty"`
	// Project is the compose project the instance belongs to, Service
	// the project's service it is a replica of.
	Project string `json:"project,omitempty"`
	Service string `json:"service,omitempty"`
	// Health is probed from the host while the guest runs.
	Health *Probe `json:"health,omitempty"`
}

// Statuses an instance goes through.
const (
	Starting   = "starting"
	Running    = "running"
	Restarting = "restarting"
	Exited     = "exited"  // the program exited and the policy does not restart it
	Stopped    = "stopped" // ops instance stop
	Failed     = "failed"  // QEMU or the guest could not run
	Dead       = "dead"    // the supervisor was killed; ops instance start recovers
)

// State is what the supervisor last recorded.
type State struct {
	Status     string    `json:"status"`
	Supervisor int       `json:"supervisor_pid,omitempty"`
	Started    uint64    `json:"supervisor_start,omitempty"` // its start time, in clock ticks since boot
	QEMU       int       `json:"qemu_pid,omitempty"`
	ExitCode   *int      `json:"exit_code,omitempty"`
	Restarts   int       `json:"restarts"`
	Error      string    `json:"error,omitempty"`
	Updated    time.Time `json:"updated"`
}

// Instance is a spec and its state, as list shows it.
type Instance struct {
	Spec
	State
	Guest string `json:"guest"`
	// HealthStatus is the probe's last status while the guest runs
	// (starting, healthy, unhealthy); empty without a probe.
	HealthStatus string `json:"health_status,omitempty"`
}

// Store is the instances folder of an ops home.
type Store struct{ Dir string }

// NewStore is the store in home.
func NewStore(home lepton.Home) Store { return Store{Dir: home.InstancesDir()} }

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`) })

// dir is an instance's folder.
func (s Store) dir(name string) string { return filepath.Join(s.Dir, name) }

// Files of an instance.
const (
	specJSON  = "spec.json"
	stateJSON = "state.json"
)

func (s Store) specFile(name string) string  { return filepath.Join(s.dir(name), specJSON) }
func (s Store) stateFile(name string) string { return filepath.Join(s.dir(name), stateJSON) }
func (s Store) stopFile(name string) string  { return filepath.Join(s.dir(name), "stop") }

// LogFile is the instance's console log.
func (s Store) LogFile(name string) string { return filepath.Join(s.dir(name), "console.log") }

// qmpSocket is where the instance's QEMU takes QMP commands.
func (s Store) qmpSocket(name string) string { return filepath.Join(s.dir(name), "qmp.sock") }

// Create records a new instance; the name must be free, and its image is
// made to reach the disk (lepton.KeepImage). Its folder is
// written whole under a temporary name and renamed into place only if
// the name is still free, so of two creates of one name exactly one
// wins, and a create killed on the way leaves nothing but a temporary
// folder that the next one clears.
func (s Store) Create(spec Spec) error {
	if !nameRE().MatchString(spec.Name) {
		return fmt.Errorf("instance name %q: use lower-case letters, digits, dots, dashes and underscores (at most 63)", spec.Name)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := fileutil.ClearStale(s.Dir); err != nil {
		return goerrors.Wrap(err, 0)
	}
	exists := fmt.Errorf("an instance named %s exists already (ops instance delete %s removes it)", spec.Name, spec.Name)
	if _, err := os.Stat(s.dir(spec.Name)); err == nil {
		return exists
	}
	// A build leaves its image unsynced; an instance boots it again after
	// the machine restarts, so it must be on the disk.
	if err := lepton.KeepImage(spec.Image); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("image %s: %w", spec.Image, err)
	}
	tmp, err := fileutil.MkdirTemp(s.Dir, spec.Name)
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := writeJSON(filepath.Join(tmp, specJSON), spec); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(tmp, stateJSON), State{Status: Stopped, Updated: time.Now().UTC()}); err != nil {
		return err
	}
	if err := fileutil.RenameNew(tmp, s.dir(spec.Name)); errors.Is(err, os.ErrExist) {
		return exists
	} else if err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// Get reads an instance, with its status checked against the process
// table: a supervisor that is gone (killed with -9) shows as dead.
func (s Store) Get(name string) (*Instance, error) {
	var in Instance
	if err := readJSON(s.specFile(name), &in.Spec); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no instance %q (ops instance list shows them)", name)
	} else if err != nil {
		return nil, err
	}
	if err := readJSON(s.stateFile(name), &in.State); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	in.Guest = in.Config.Guest
	switch in.Status {
	case Starting, Running, Restarting:
		if !proc.Alive(in.Supervisor, in.Started) {
			in.Status, in.QEMU = Dead, 0
		}
	}
	if in.Health != nil && in.Status == Running {
		in.HealthStatus = s.readHealth(name)
		if in.HealthStatus == "" {
			in.HealthStatus = HealthStarting
		}
	}
	return &in, nil
}

// List reads every instance, by name.
func (s Store) List() ([]*Instance, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	var out []*Instance
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		in, err := s.Get(e.Name())
		if err != nil {
			continue // a folder being created or removed
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes a stopped instance's folder: spec, state, log, socket.
func (s Store) Delete(name string) error {
	in, err := s.Get(name)
	if err != nil {
		return err
	}
	if in.Active() {
		return fmt.Errorf("instance %s is %s; stop it first (or delete -f)", name, in.Status)
	}
	if err := fileutil.RemoveAll(s.dir(name)); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// Active reports whether the instance's supervisor is running.
func (in *Instance) Active() bool {
	switch in.Status {
	case Starting, Running, Restarting:
		return true
	}
	return false
}

func (s Store) setState(name string, st State) error {
	st.Updated = time.Now().UTC()
	return writeJSON(s.stateFile(name), st)
}

func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(p, append(b, '\n'), 0o644); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

func readJSON(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}
