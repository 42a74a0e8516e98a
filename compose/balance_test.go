package compose

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/internal/proc"
)

func TestChoose(t *testing.T) {
	bs := []Backend{{Instance: "a"}, {Instance: "b"}, {Instance: "c"}}
	for _, tc := range []struct {
		ranks []int
		want  string // instances of connections 0..5
	}{
		{[]int{2, 2, 2}, "abcabc"},
		{[]int{2, 1, 2}, "acacac"}, // b not healthy yet: none for it
		{[]int{0, 1, 0}, "bbbbbb"}, // only b runs
		{[]int{0, 0, 0}, "abcabc"}, // none runs: wait on each in turn
	} {
		got := ""
		for n := uint64(0); n < 6; n++ {
			got += choose(bs, tc.ranks, n).Instance
		}
		if got != tc.want {
			t.Errorf("ranks %v: %s, want %s", tc.ranks, got, tc.want)
		}
	}
}

// writeInstance records a running instance supervised by this process,
// with a health check in the given status ("" for none).
func writeInstance(t *testing.T, store instance.Store, name, health string) {
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
	b, _ = json.Marshal(instance.State{Status: instance.Running, Supervisor: os.Getpid(), Started: start})
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
		be, err := Balancer{Dir: dir}.Next("d", 8080)
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
	if be, err := (Balancer{Dir: dir}).Next("web", 80); err != nil || be.Addr != "127.0.0.1:40003" {
		t.Fatalf("web: %+v %v", be, err)
	}
	writeInstance(t, store, "p-d-2", instance.HealthUnhealthy)
	for i := 0; i < 4; i++ {
		if be, _ := (Balancer{Dir: dir}).Next("d", 8080); be.Instance != "p-d-1" {
			t.Fatalf("a connection went to the unhealthy replica %s", be.Instance)
		}
	}
	if _, err := (Balancer{Dir: dir}).Next("d", 9999); err == nil {
		t.Fatal("a port the service does not have was routed")
	}
}
