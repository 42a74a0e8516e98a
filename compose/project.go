package compose

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/qemu"
)

// Project is a compose file and where its background run keeps its
// state: <ops home>/compose/<name>/ with the supervisor's pid and log.
type Project struct {
	File *File
	Dir  string
}

// OpenProject loads a compose file and finds its state folder.
func OpenProject(homeDir, path string) (*Project, error) {
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	return &Project{File: f, Dir: filepath.Join(homeDir, "compose", f.Name)}, nil
}

// PID is the background supervisor's process ID, 0 when there is none.
func (p *Project) PID() int {
	b, err := os.ReadFile(filepath.Join(p.Dir, "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
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
	if err := fileutil.WriteAtomic(filepath.Join(p.Dir, "pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		c.Process.Kill()
		return 0, err
	}
	c.Process.Release()
	return pid, nil
}

// Instances are the instances the project's services run as (up -d).
func (p *Project) Instances(store instance.Store) ([]*instance.Instance, error) {
	all, err := store.List()
	if err != nil {
		return nil, err
	}
	var out []*instance.Instance
	for _, in := range all {
		if in.Project == p.File.Name {
			out = append(out, in)
		}
	}
	return out, nil
}

// DownInstances stops and removes the project's instances; it reports
// whether there were any.
func (p *Project) DownInstances(store instance.Store) (bool, error) {
	ins, err := p.Instances(store)
	if err != nil || len(ins) == 0 {
		return false, err
	}
	for _, in := range ins {
		if err := store.Stop(in.Name, instance.DefaultStopTimeout); err != nil {
			return true, err
		}
		if err := store.Delete(in.Name); err != nil {
			return true, err
		}
	}
	return true, nil
}

// Down stops the background run: SIGTERM, which stops every VM and
// removes what the run made, then after 10 s SIGKILL of its whole session.
func (p *Project) Down() error {
	pid := p.PID()
	if pid <= 1 {
		return fmt.Errorf("project %s is not up (no pid in %s)", p.File.Name, p.Dir)
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
	return os.Remove(filepath.Join(p.Dir, "pid"))
}
