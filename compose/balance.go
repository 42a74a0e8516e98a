package compose

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/internal/splice"
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
	qemu     int    // the instance's QEMU when the balancer read it
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

// Balancer chooses the replica each connection to a service goes to:
// round-robin over the replicas that are ready, the others after them in
// case the chosen one does not answer. It holds no connection: the
// transport (the project network's listeners, at the service's address
// or on a published host port, or a guestfwd running ops proxy per
// connection) asks it for a route and joins the connection to the first
// replica there that answers.
type Balancer struct {
	Dir string // the project's state folder: routes.json and the counters
	// Unreachable, when set, keeps the replicas that did not answer a
	// connection out of the choice (a long-lived balancer: the network
	// holder's); nil, each connection learns on its own (ops proxy).
	Unreachable *Unreachable
}

// Route is where the next connection to service's guest port goes: its
// replicas, best first (see order), and, with b.Unreachable, the marking
// down of one that refuses it.
func (b Balancer) Route(service string, port int) (splice.Route, error) {
	backends, err := b.candidates(service, port)
	if err != nil {
		return splice.Route{}, err
	}
	var r splice.Route
	for _, be := range backends {
		r.Addrs = append(r.Addrs, be.Addr)
	}
	if d := b.Unreachable; d != nil {
		r.Failed = func(addr string, err error) {
			// Refused: nothing listens there, its QEMU (or its passt) is
			// gone. A connection that timed out tells nothing so sure.
			if !errors.Is(err, syscall.ECONNREFUSED) {
				return
			}
			for _, be := range backends {
				if be.Addr == addr {
					d.mark(be.Instance, be.qemu)
				}
			}
		}
	}
	return r, nil
}

// candidates are the replicas of service's guest port in the order the
// next connection tries them.
func (b Balancer) candidates(service string, port int) ([]Backend, error) {
	var r Routes
	data, err := os.ReadFile(routesFile(b.Dir))
	if err != nil {
		return nil, fmt.Errorf("project state %s: %w (is the project up?)", b.Dir, err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", routesFile(b.Dir), err)
	}
	backends := r.Services[service][strconv.Itoa(port)]
	if len(backends) == 0 {
		return nil, fmt.Errorf("service %s has no port %d", service, port)
	}
	store := instance.Store{Dir: r.Instances}
	ranks := make([]int, len(backends))
	for i := range backends {
		in, err := store.Get(backends[i].Instance)
		if err != nil {
			continue
		}
		backends[i].qemu = in.QEMU
		if !b.Unreachable.is(in.Name, in.QEMU) {
			ranks[i] = rank(in)
		}
	}
	n, err := b.count(service + "-" + strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	return order(backends, ranks, n), nil
}

// rank is how ready a replica is for a connection: 2 running and healthy
// (or running without a health check), 1 running but not (yet) healthy,
// 0 not running (or down: it did not answer).
func rank(in *instance.Instance) int {
	if in.Status != instance.Running {
		return 0
	}
	if in.Health == nil || in.HealthStatus == instance.HealthHealthy {
		return 2
	}
	return 1
}

// order is the replicas the n-th connection tries, in turn: first the
// one round-robin picks among those of the best rank present (so with two
// healthy replicas, connections alternate; an unhealthy one gets none
// while a healthy one is there, and when none is running, the connection
// still goes somewhere and waits for it), then the others of that rank
// after it, then the less ready ones, best first.
func order(backends []Backend, ranks []int, n uint64) []Backend {
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
	k := int(n % uint64(len(ready)))
	out := append(ready[k:len(ready):len(ready)], ready[:k]...)
	for r := best - 1; r >= 0; r-- {
		for i, be := range backends {
			if ranks[i] == r {
				out = append(out, be)
			}
		}
	}
	return out
}

// downFor is how long a replica that did not answer stays down while its
// instance still records the QEMU it had then. Short: a replica refuses
// too while its program starts (a connection by name from a service that
// came up first), and should get connections as soon as it listens; a
// dead one tried again costs a refused connect, which moves the
// connection on to the next replica.
const downFor = time.Second

// Unreachable is the replicas a balancer found not answering (refused: their
// QEMU, or its passt, gone). Each is left out of the choice (tried last)
// until its instance records another QEMU (the restart policy booted it
// again: its health, if it has a check, then says when it is ready), or
// for downFor at most.
type Unreachable struct {
	mu    sync.Mutex
	marks map[string]downMark
	now   func() time.Time // time.Now; tests set it
}

type downMark struct {
	qemu  int // the instance's QEMU when it did not answer
	since time.Time
}

func (d *Unreachable) clock() time.Time {
	if d.now != nil {
		return d.now()
	}
	return time.Now()
}

// mark records that the replica of instance, running qemu, did not answer.
func (d *Unreachable) mark(instance string, qemu int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.marks == nil {
		d.marks = map[string]downMark{}
	}
	if m, ok := d.marks[instance]; ok && m.qemu == qemu {
		return // down since the first refusal
	}
	d.marks[instance] = downMark{qemu: qemu, since: d.clock()}
}

// is reports whether instance, now running qemu, is down.
func (d *Unreachable) is(instance string, qemu int) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.marks[instance]
	if !ok {
		return false
	}
	if m.qemu != qemu || d.clock().Sub(m.since) >= downFor {
		delete(d.marks, instance)
		return false
	}
	return true
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
