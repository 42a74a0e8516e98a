package compose

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/internal/proc"
)

func TestOrder(t *testing.T) {
	bs := []Backend{{Instance: "a"}, {Instance: "b"}, {Instance: "c"}}
	for _, tc := range []struct {
		ranks []int
		want  string // the order of connections 0..3, each after a space
	}{
		{[]int{2, 2, 2}, " abc bca cab abc"},
		{[]int{2, 1, 2}, " acb cab acb cab"}, // b not healthy yet: none first, tried last
		{[]int{0, 1, 0}, " bac bac bac bac"}, // only b runs
		{[]int{2, 0, 1}, " acb acb acb acb"}, // best first, then by rank
		{[]int{0, 0, 0}, " abc bca cab abc"}, // none runs: wait on each in turn
	} {
		got := ""
		for n := uint64(0); n < 4; n++ {
			got += " "
			for _, be := range order(bs, tc.ranks, n) {
				got += be.Instance
			}
		}
		if got != tc.want {
			t.Errorf("ranks %v: %s, want %s", tc.ranks, got, tc.want)
		}
	}
}

// TestUnreachable: a replica that did not answer stays down until its
// instance records another QEMU, or for downFor.
func TestUnreachable(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, tc := range []struct {
		name  string
		qemu  int           // the instance's QEMU when asked
		after time.Duration // since the mark
		down  bool
	}{
		{"same QEMU", 100, 0, true},
		{"same QEMU, later", 100, downFor - time.Millisecond, true},
		{"same QEMU, downFor later", 100, downFor, false},
		{"restarting (no QEMU)", 0, time.Millisecond, false},
		{"another QEMU", 101, time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := start
			d := &Unreachable{now: func() time.Time { return now }}
			d.mark("p-web-1", 100)
			now = now.Add(tc.after)
			if got := d.is("p-web-1", tc.qemu); got != tc.down {
				t.Fatalf("down %v, want %v", got, tc.down)
			}
			if d.is("p-web-2", 100) {
				t.Fatal("another replica is down")
			}
		})
	}
	var none *Unreachable // ops proxy's balancer keeps no marks
	if none.is("p-web-1", 100) {
		t.Fatal("a nil Unreachable marks down")
	}
}

// writeInstance records a running instance supervised by this process,
// with a health check in the given status ("" for none) and QEMU pid 100.
func writeInstance(t *testing.T, store instance.Store, name, health string) {
	t.Helper()
	writeInstanceQEMU(t, store, name, health, 100)
}

func writeInstanceQEMU(t *testing.T, store instance.Store, name, health string, qemu int) {
	t.Helper()
	dir := filepath.Join(store.Dir, name)
	os.MkdirAll(dir, 0o755)
	spec := instance.Spec{Name: name}
	if health != "" {
		spec.Health = &instance.Probe{TCP: "127.0.0.1:1", Interval: time.Second, Timeout: time.Second, Retries: 1}
		b, _ := json.Marshal(instance.Health{Status: health})
		os.WriteFile(filepath.Join(dir, "health.json"), b, 0o644)
	}
	start, err := proc.Start(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, "spec.json"), b, 0o644)
	b, _ = json.Marshal(instance.State{Status: instance.Running, Supervisor: os.Getpid(), Started: start, QEMU: qemu})
	os.WriteFile(filepath.Join(dir, "state.json"), b, 0o644)
}

// TestBalancer: ten connections by name over two healthy replicas go five
// to each, alternating, across processes (the counter is a file); an
// unhealthy replica gets none while a healthy one is there.
func TestBalancer(t *testing.T) {
	home := t.TempDir()
	store := instance.Store{Dir: filepath.Join(home, "instances")}
	writeInstance(t, store, "p-d-1", instance.HealthHealthy)
	writeInstance(t, store, "p-d-2", instance.HealthHealthy)
	writeInstance(t, store, "p-web", "")
	n := &Net{Endpoints: []Endpoint{
		{Service: "d", Instance: "p-d-1", Port: 8080, HostIP: "127.0.0.1", HostPort: 40001},
		{Service: "d", Instance: "p-d-2", Port: 8080, HostIP: "127.0.0.1", HostPort: 40002},
		{Service: "web", Instance: "p-web", Port: 80, HostIP: "0.0.0.0", HostPort: 40003},
	}}
	dir := filepath.Join(home, "compose", "p")
	if err := writeRoutes(dir, routesFor(store, n)); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	last := ""
	for i := 0; i < 10; i++ {
		be, err := first(Balancer{Dir: dir}, "d", 8080)
		if err != nil {
			t.Fatal(err)
		}
		if be.Addr == last {
			t.Fatalf("connection %d went to %s again", i, be.Addr)
		}
		last = be.Addr
		count[be.Addr]++
	}
	if count["127.0.0.1:40001"] != 5 || count["127.0.0.1:40002"] != 5 {
		t.Fatalf("10 connections: %v", count)
	}
	if be, err := first(Balancer{Dir: dir}, "web", 80); err != nil || be.Addr != "127.0.0.1:40003" {
		t.Fatalf("web: %+v %v", be, err)
	}
	writeInstance(t, store, "p-d-2", instance.HealthUnhealthy)
	for i := 0; i < 4; i++ {
		if be, _ := first(Balancer{Dir: dir}, "d", 8080); be.Instance != "p-d-1" {
			t.Fatalf("a connection went to the unhealthy replica %s", be.Instance)
		}
	}
	if _, err := first(Balancer{Dir: dir}, "d", 9999); err == nil {
		t.Fatal("a port the service does not have was routed")
	}
}

// first is the replica a balancer would join the next connection to
// service:port to, when it answers.
func first(b Balancer, service string, port int) (Backend, error) {
	bs, err := b.candidates(service, port)
	if err != nil {
		return Backend{}, err
	}
	return bs[0], nil
}

// TestBalancerRoute: a holder's connection tries the replicas in turn; one
// whose replica refused is left last by the next connections until its
// instance runs another QEMU.
func TestBalancerRoute(t *testing.T) {
	home := t.TempDir()
	store := instance.Store{Dir: filepath.Join(home, "instances")}
	writeInstance(t, store, "p-d-1", "")
	writeInstance(t, store, "p-d-2", "")
	n := &Net{Endpoints: []Endpoint{
		{Service: "d", Instance: "p-d-1", Port: 8080, HostIP: "127.0.0.1", HostPort: 40001},
		{Service: "d", Instance: "p-d-2", Port: 8080, HostIP: "127.0.0.1", HostPort: 40002},
	}}
	dir := filepath.Join(home, "compose", "p")
	if err := writeRoutes(dir, routesFor(store, n)); err != nil {
		t.Fatal(err)
	}
	b := Balancer{Dir: dir, Unreachable: &Unreachable{}}
	routes := func(k int) string {
		var out []string
		for i := 0; i < k; i++ {
			r, err := b.Route("d", 8080)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.Join(r.Addrs, ","))
		}
		return strings.Join(out, " ")
	}
	if got, want := routes(2), "127.0.0.1:40001,127.0.0.1:40002 127.0.0.1:40002,127.0.0.1:40001"; got != want {
		t.Fatalf("routes %s, want %s", got, want)
	}
	r, _ := b.Route("d", 8080)
	r.Failed("127.0.0.1:40001", errors.New("i/o timeout")) // not sure enough
	if got, want := routes(2), "127.0.0.1:40002,127.0.0.1:40001 127.0.0.1:40001,127.0.0.1:40002"; got != want {
		t.Fatalf("after a timeout: routes %s, want %s", got, want)
	}
	r, _ = b.Route("d", 8080)
	r.Failed("127.0.0.1:40001", fmt.Errorf("dial tcp 127.0.0.1:40001: %w", syscall.ECONNREFUSED))
	for _, step := range []struct {
		name string
		qemu int // p-d-1's QEMU now
		want string
	}{
		{"refused", 100, "127.0.0.1:40002,127.0.0.1:40001 127.0.0.1:40002,127.0.0.1:40001"},
		{"booted again", 101, "127.0.0.1:40001,127.0.0.1:40002 127.0.0.1:40002,127.0.0.1:40001"}, // round-robin again
	} {
		writeInstanceQEMU(t, store, "p-d-1", "", step.qemu)
		if got := routes(2); got != step.want {
			t.Fatalf("%s: routes %s, want %s", step.name, got, step.want)
		}
	}
	// ops proxy's balancer learns nothing from a failure.
	if r, _ := (Balancer{Dir: dir}).Route("d", 8080); r.Failed != nil {
		t.Fatal("a balancer without Unreachable marks replicas down")
	}
}
