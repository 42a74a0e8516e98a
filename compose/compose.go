// Package compose describes several unikernels that talk to each other:
// the compose file (the Compose Specification, read by compose-go), and
// the addresses, names and port forwards that let every service reach
// every other by name, with or without root.
package compose

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// File is a loaded compose project: its services as ops runs them and
// the lines to show about keys ops does not use.
type File struct {
	Name     string
	Dir      string // the folder relative paths start from
	Services map[string]*Service
	// Volumes are the named volumes the services mount, by their name in
	// the file (volumeName gives the ops volume's name).
	Volumes []string
	// Warnings are one line each about keys ops ignores; cmd/ prints them.
	Warnings []string
}

// Service is one service: an ELF, a package or a container image, with
// its arguments, environment, ports, health check and replicas.
type Service struct {
	Name string
	// From x-ops: a program on the host, or a package.
	Program string
	Package string
	Local   bool   // Package is a local package
	Config  string // a config.json for the service
	Guest   string
	Arch    string // from platform: (linux/arm64 is arm64); "" is the config's, else this machine's
	// Image is an OCI reference or a docker-archive tarball.
	Image      string
	Entrypoint []string // replaces the image's ENTRYPOINT (nil: not given)
	Command    []string // the program's arguments, or the image's CMD
	Env        map[string]string
	WorkingDir string
	Expose     []int // ports other services reach
	Ports      []Publish
	DependsOn  map[string]string // service -> condition
	Restart    string            // no, always, on-failure[:N], unless-stopped
	Replicas   int
	Memory     string // VM memory, as -m takes it
	CPUs       int
	Hostname   string
	Mounts     []VolumeMount
	Binds      []BindMount
	Health     *Health
}

// Publish is a port published on the host.
type Publish struct {
	HostIP string // default 127.0.0.1
	Host   int
	Guest  int
}

// BindMount is a host folder or file a service's volumes bind into the
// guest: a folder is shared with it (as ops run --mounts /dir:/path), a
// file is copied into its image (a VM shares folders, not single files).
type BindMount struct {
	Source   string // absolute host path
	Target   string
	ReadOnly bool
	File     bool
}

// VolumeMount is a named volume mounted in the guest.
type VolumeMount struct {
	Volume   string // its name in the compose file
	Path     string
	ReadOnly bool
}

// Health is how ops probes a service from the host: an HTTP GET of Path
// (2xx/3xx is healthy), or a TCP connection when Path is empty (with
// Send and Expect, a reply to check), to the guest's Port through the
// service's own forward.
type Health struct {
	Port          int
	Path          string // starts with /; empty for a TCP probe
	Send, Expect  string // TCP: written, and the start of the reply (redis-cli ping)
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

// Conditions of depends_on.
const (
	Started   = "service_started"
	Healthy   = "service_healthy"
	Completed = "service_completed_successfully"
)

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`) })

func sanitize(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 20 {
		out = out[:20]
	}
	if out == "" {
		out = "ops"
	}
	return out
}

// Names are the services in a stable order.
func (f *File) Names() []string {
	var out []string
	for n := range f.Services {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// order is the services in start order: every service after those it
// depends on (ties by name). A cycle is an error.
func (f *File) order() ([]string, error) {
	var out []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("services %s depend on each other in a cycle; remove one depends_on", strings.Join(append(path, n), " -> "))
		case 2:
			return nil
		}
		state[n] = 1
		s := f.Services[n]
		var deps []string
		for d := range s.DependsOn {
			deps = append(deps, d)
		}
		sort.Strings(deps)
		for _, d := range deps {
			if _, ok := f.Services[d]; !ok {
				return fmt.Errorf("service %s: depends_on %s, which is not a service of this file", n, d)
			}
			if err := visit(d, append(path, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	for _, n := range f.Names() {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// volumeName is the ops volume a project's named volume is: <project>_<name>.
func (f *File) volumeName(name string) string { return f.Name + "_" + name }
