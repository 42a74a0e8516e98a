package compose

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
)

// Project is a compose file and where its state lives: <ops home>/compose/<name>/
// with the routes of by-name connections, the balancer's counters, and
// the pid and log of a background --bridged run.
type Project struct {
	File *File
	Dir  string
}

// OpenProject loads a compose project and finds its state folder.
func OpenProject(ctx context.Context, home lepton.Home, o LoadOptions) (*Project, error) {
	f, err := Load(ctx, o)
	if err != nil {
		return nil, err
	}
	return &Project{File: f, Dir: stateDir(home, f.Name)}, nil
}

// PID is the background supervisor's process ID, 0 when there is none.
func (p *Project) PID() int { return readPID(filepath.Join(p.Dir, "pid")) }

// readPID is the process ID recorded in path, 0 when there is none.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// writePID records a process ID in path.
func writePID(path string, pid int) error {
	return fileutil.WriteAtomic(path, []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// LogPath is the background run's log.
func (p *Project) LogPath() string { return filepath.Join(p.Dir, "log") }

// Detach starts argv (ops compose up, in the foreground form) in its own
// session with its output in the project's log, records its pid and
// returns it.
func (p *Project) Detach(argv []string) (int, error) {
	if pid := p.PID(); qemu.Alive(pid) {
		return 0, fmt.Errorf("project %s is already up (pid %d); stop it with 'ops compose down'", p.File.Name, pid)
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return 0, err
	}
	logf, err := os.Create(p.LogPath())
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return 0, err
	}
	pid := c.Process.Pid
	if err := writePID(filepath.Join(p.Dir, "pid"), pid); err != nil {
		c.Process.Kill()
		return 0, err
	}
	c.Process.Release()
	return pid, nil
}

// Instances are the instances the project's replicas run as, by name;
// with services, only theirs.
func (p *Project) Instances(store instance.Store, services ...string) ([]*instance.Instance, error) {
	all, err := store.List()
	if err != nil {
		return nil, err
	}
	for _, s := range services {
		if _, ok := p.File.Services[s]; !ok {
			return nil, fmt.Errorf("no service %q in project %s (services: %s)", s, p.File.Name, strings.Join(p.File.Names(), ", "))
		}
	}
	var out []*instance.Instance
	for _, in := range all {
		if in.Project != p.File.Name {
			continue
		}
		if len(services) > 0 && !slices.Contains(services, in.Service) {
			continue
		}
		out = append(out, in)
	}
	return out, nil
}

// lockProject claims the project for one up or down at a time: another
// gets one clear error. unlock ends the claim (so does the process's end).
func lockProject(home lepton.Home, name string) (unlock func(), err error) {
	lock := home.ComposeLock(name)
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	unlock, err = fileutil.TryLock(lock)
	if errors.Is(err, fileutil.ErrLocked) {
		return nil, fmt.Errorf("project %s: another ops compose up or down is at work on it; wait for it to end", name)
	} else if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	return unlock, nil
}

// Down stops and removes the project's instances and its state folder;
// with volumes, its named volumes too. It reports what it removed.
func Down(store instance.Store, f *File, home lepton.Home, volumes bool) error {
	unlock, err := lockProject(home, f.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := down(store, f, home, volumes); err != nil {
		return err
	}
	if _, err := os.Stat(home.ComposeDir(f.Name)); errors.Is(err, os.ErrNotExist) {
		// The project is gone: its lock file goes with it (held here).
		_ = fileutil.RemoveLocked(home.ComposeLock(f.Name))
	}
	return nil
}

// down is Down by the holder of the project's lock.
func down(store instance.Store, f *File, home lepton.Home, volumes bool) error {
	p := &Project{File: f, Dir: stateDir(home, f.Name)}
	ins, err := p.Instances(store)
	if err != nil {
		return err
	}
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := store.Stop(in.Name, instance.DefaultStopTimeout)
			if err == nil {
				err = store.Delete(in.Name)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	stopNet(p.Dir)
	if p.PID() == 0 {
		if err := fileutil.RemoveAll(p.Dir); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	if volumes {
		for _, v := range f.Volumes {
			n := f.volumeName(v)
			if _, err := home.Volumes().Get(n); err != nil {
				continue
			}
			if err := home.Volumes().Delete(n); err != nil {
				return fmt.Errorf("volume %s: %w", n, err)
			}
		}
	}
	return nil
}

// StopBackground stops the background --bridged run: SIGTERM, which stops
// every VM and removes what the run made, then after 10 s SIGKILL of its
// whole session.
func (p *Project) StopBackground() error {
	pid := p.PID()
	if pid <= 1 {
		return fmt.Errorf("project %s is not up (no instances, no pid in %s)", p.File.Name, p.Dir)
	}
	if qemu.Alive(pid) {
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100 && qemu.Alive(pid); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if qemu.Alive(pid) {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	return os.RemoveAll(p.Dir)
}

// PSRow is one replica as ops compose ps shows it.
type PSRow struct {
	Name, Service, Status, Health, Ports string
}

// PS lists the project's replicas.
func (p *Project) PS(store instance.Store, services ...string) ([]PSRow, error) {
	ins, err := p.Instances(store, services...)
	if err != nil {
		return nil, err
	}
	// The host ports of a project with a network namespace are its
	// holder's listeners, and so are the ports a service's replicas share
	// (in a project without one too).
	var hostPorts []HostPort
	if spec, err := readNetSpec(p.Dir); err == nil {
		hostPorts = spec.Host
	}
	var rows []PSRow
	shown := map[string]bool{} // services whose shared ports are on a row
	for _, in := range ins {
		r := PSRow{Name: in.Name, Service: in.Service, Status: in.Status, Health: in.HealthStatus}
		if in.Status == instance.Exited && in.ExitCode != nil {
			r.Status = fmt.Sprintf("exited (%d)", *in.ExitCode)
		}
		var ports []string
		if !shown[in.Service] {
			shown[in.Service] = true
			for _, h := range hostPorts {
				if h.Instance == "" && h.Service == in.Service {
					ports = append(ports, fmt.Sprintf("%s->%d (balanced)", h.Listen, h.Port))
				}
			}
		}
		switch {
		case in.Net != nil && in.Net.Namespace != "":
			for _, h := range hostPorts {
				if h.Instance == in.Name {
					ports = append(ports, fmt.Sprintf("%s->%d", h.Listen, h.Port))
				}
			}
		case in.Net != nil:
			for _, f := range in.Net.Forwards {
				ports = append(ports, fmt.Sprintf("%s:%d->%d", f.HostIP, f.HostPort, f.GuestPort))
			}
		}
		r.Ports = strings.Join(ports, ", ")
		rows = append(rows, r)
	}
	return rows, nil
}

// Logs writes the console logs of the named instances, each line
// prefixed with the instance's name as docker compose prints it
// ("name  | line"). With follow it keeps printing what they append until
// ctx ends; without, it prints each log once, one after another.
func Logs(ctx context.Context, store instance.Store, names []string, w io.Writer, follow bool) error {
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, n := range names {
		prefix := fmt.Sprintf("%-*s | ", width, n)
		copyLog := func() error {
			f, err := os.Open(store.LogFile(n))
			if errors.Is(err, os.ErrNotExist) && follow {
				// not written yet
				for errors.Is(err, os.ErrNotExist) && ctx.Err() == nil {
					time.Sleep(200 * time.Millisecond)
					f, err = os.Open(store.LogFile(n))
				}
			}
			if err != nil {
				if errors.Is(err, os.ErrNotExist) || ctx.Err() != nil {
					return nil
				}
				return err
			}
			defer f.Close()
			r := bufio.NewReader(f)
			var partial string
			for {
				line, err := r.ReadString('\n')
				partial += line
				if err == nil {
					mu.Lock()
					fmt.Fprint(w, prefix+partial)
					mu.Unlock()
					partial = ""
					continue
				}
				if !follow || ctx.Err() != nil {
					if partial != "" {
						mu.Lock()
						fmt.Fprintln(w, prefix+partial)
						mu.Unlock()
					}
					return nil
				}
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
		if !follow {
			if err := copyLog(); err != nil {
				return err
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := copyLog(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Restart stops and starts the instances of the project (or of the
// named services) again.
func (p *Project) Restart(store instance.Store, self string, services ...string) error {
	ins, err := p.Instances(store, services...)
	if err != nil {
		return err
	}
	if len(ins) == 0 {
		return fmt.Errorf("project %s is not up (ops compose up -d starts it)", p.File.Name)
	}
	for _, in := range ins {
		if err := store.Stop(in.Name, instance.DefaultStopTimeout); err != nil {
			return err
		}
		if _, err := store.Start(self, in.Name); err != nil {
			return err
		}
	}
	return nil
}
