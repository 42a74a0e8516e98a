package compose

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/internal/fileutil"
	"golang.org/x/sys/unix"
)

// Routes is what a by-name connection needs to find its replica: every
// service's guest ports and, for each, the replicas' host addresses.
// up writes it into the project's state folder; the proxy reads it.
type Routes struct {
	Instances string                          `json:"instances"` // the instance store's folder
	Services  map[string]map[string][]Backend `json:"services"`  // service -> guest port -> replicas
}

// Backend is one replica's port, where the balancer reaches it.
type Backend struct {
	Instance string `json:"instance"`
	Addr     string `json:"addr"`
}

// routesFor lists every replica's endpoints: in the project's network
// namespace when it has one, else on the host.
func routesFor(store instance.Store, n *Net) Routes {
	r := Routes{Instances: store.Dir, Services: map[string]map[string][]Backend{}}
	for _, e := range n.Endpoints {
		ports := r.Services[e.Service]
		if ports == nil {
			ports = map[string][]Backend{}
			r.Services[e.Service] = ports
		}
		p := strconv.Itoa(e.Port)
		addr := net.JoinHostPort(n.ReplicaAddr[e.Instance], p)
		if !n.Namespace {
			host := e.HostIP
			if host == "0.0.0.0" || host == "" {
				host = "127.0.0.1"
			}
			addr = Endpoint{HostIP: host, HostPort: e.HostPort}.Addr()
		}
		ports[p] = append(ports[p], Backend{Instance: e.Instance, Addr: addr})
	}
	return r
}

func routesFile(dir string) string { return filepath.Join(dir, "routes.json") }

// writeRoutes records the routes in the project's state folder.
func writeRoutes(dir string, r Routes) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return goerrors.Wrap(err, 0)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(routesFile(dir), append(b, '\n'), 0o644)
}

// Balancer chooses the replica each by-name connection to a service goes
// to: round-robin over the replicas that are ready. It holds no
// connection: the transport (the project network's listener at the
// service's address, or a guestfwd running ops proxy per connection)
// asks it for an address and joins the connection to it.
type Balancer struct {
	Dir string // the project's state folder: routes.json and the counters
}

// Next is the address of the replica the next connection to service's
// guest port goes to.
func (b Balancer) Next(service string, port int) (Backend, error) {
	var r Routes
	data, err := os.ReadFile(routesFile(b.Dir))
	if err != nil {
		return Backend{}, fmt.Errorf("project state %s: %w (is the project up?)", b.Dir, err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return Backend{}, fmt.Errorf("%s: %w", routesFile(b.Dir), err)
	}
	backends := r.Services[service][strconv.Itoa(port)]
	if len(backends) == 0 {
		return Backend{}, fmt.Errorf("service %s has no port %d", service, port)
	}
	store := instance.Store{Dir: r.Instances}
	ranks := make([]int, len(backends))
	for i, be := range backends {
		if in, err := store.Get(be.Instance); err == nil {
			ranks[i] = rank(in)
		}
	}
	n, err := b.count(service + "-" + strconv.Itoa(port))
	if err != nil {
		return Backend{}, err
	}
	return choose(backends, ranks, n), nil
}

// rank is how ready a replica is for a connection: 2 running and healthy
// (or running without a health check), 1 running but not (yet) healthy,
// 0 not running.
func rank(in *instance.Instance) int {
	if in.Status != instance.Running {
		return 0
	}
	if in.Health == nil || in.HealthStatus == instance.HealthHealthy {
		return 2
	}
	return 1
}

// choose is the n-th connection's replica: round-robin over those of the
// best rank present (so with two healthy replicas, connections alternate;
// an unhealthy one gets none while a healthy one is there, and when none
// is running, the connection still goes somewhere and waits for it).
func choose(backends []Backend, ranks []int, n uint64) Backend {
	best := 0
	for _, r := range ranks {
		best = max(best, r)
	}
	var ready []Backend
	for i, be := range backends {
		if ranks[i] == best {
			ready = append(ready, be)
		}
	}
	return ready[n%uint64(len(ready))]
}

// count returns the counter key's value and adds one to it, under a lock:
// with guestfwd, each connection is its own ops proxy process.
func (b Balancer) count(key string) (uint64, error) {
	dir := filepath.Join(b.Dir, "rr")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, goerrors.Wrap(err, 0)
	}
	f, err := os.OpenFile(filepath.Join(dir, key), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, goerrors.Wrap(err, 0)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return 0, goerrors.Wrap(err, 0)
	}
	buf := make([]byte, 32)
	k, _ := f.ReadAt(buf, 0)
	n, _ := strconv.ParseUint(strings.TrimSpace(string(buf[:k])), 10, 64)
	next := []byte(strconv.FormatUint(n+1, 10) + "\n")
	if _, err := f.WriteAt(next, 0); err != nil {
		return 0, goerrors.Wrap(err, 0)
	}
	return n, nil
}
