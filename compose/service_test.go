package compose

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestServiceConfig: a replica's config is its x-ops config file with the
// service's keys over it.
func TestServiceConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"Args": ["--base"], "Env": {"A": "config", "B": "config"}, "RunConfig": {"Memory": "1G"}, "Guest": "nanos"}`
	if err := os.WriteFile(filepath.Join(dir, "svc.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.conf"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := `
services:
  plain:
    x-ops: {program: ./p}
  full:
    x-ops: {program: ./p, config: svc.json, guest: linux}
    command: [--port, "80"]
    environment: {B: service, C: service}
    working_dir: /srv
    hostname: web
    volumes: ["data:/data:ro", "./www:/srv/www:ro", "./app.conf:/etc/app.conf"]
    deploy: {resources: {limits: {memory: 1.5G, cpus: "2.5"}}}
  workers:
    x-ops: {program: ./p, config: svc.json}
    deploy: {replicas: 2}
volumes: {data: {}}
`
	f, err := Parse([]byte(doc), dir)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		Args     []string
		Env      map[string]string
		Memory   string
		CPUs     int
		Guest    string
		Cwd      string
		Hostname string
		Mounts   map[string]string
	}
	for _, tc := range []struct {
		replica      Replica
		defaultGuest string
		want         got
	}{
		{f.replicasOf("plain")[0], "", got{nil, map[string]string{}, "", 0, "", "", "plain", nil}},
		{f.replicasOf("plain")[0], "linux", got{nil, map[string]string{}, "", 0, "linux", "", "plain", nil}},
		{f.replicasOf("full")[0], "nanos", got{[]string{"--base", "--port", "80"}, map[string]string{"A": "config", "B": "service", "C": "service"},
			"1536M", 3, "linux", "/srv", "web", map[string]string{"project_data": "/data:ro", filepath.Join(dir, "www"): "/srv/www:ro"}}},
		{f.replicasOf("workers")[1], "linux", got{[]string{"--base"}, map[string]string{"A": "config", "B": "config"}, "1G", 0, "linux", "", "workers-2", nil}},
	} {
		c, err := f.serviceConfig(tc.replica, tc.defaultGuest)
		if err != nil {
			t.Fatal(err)
		}
		g := got{c.Args, c.Env, c.RunConfig.Memory, c.RunConfig.CPUs, c.Guest, c.CwdPath, c.Hostname, c.Mounts}
		if !reflect.DeepEqual(g, tc.want) {
			t.Errorf("%s (default guest %q): %+v, want %+v", tc.replica.Instance, tc.defaultGuest, g, tc.want)
		}
	}
	// A host folder is shared (Mounts, above); a host file is copied
	// into the image (fileBinds).
	if b := f.Services["full"].Binds; len(b) != 2 || !b[1].File || b[1].Source != filepath.Join(dir, "app.conf") || b[1].Target != "/etc/app.conf" || b[0].File {
		t.Fatalf("binds %+v", b)
	}
	if r := f.replicasOf("workers"); len(r) != 2 || r[0].Instance != "project-workers-1" || r[1].Hostname != "workers-2" {
		t.Fatalf("replicas %+v", r)
	}
}

// TestUserNet: a user-mode replica forwards its own ports, reaches each
// other service's port once through a guestfwd, and runs on a restricted
// QEMU network unless the project asks for the host's loopback.
func TestUserNet(t *testing.T) {
	layout := &Net{Mode: UserMode, Addr: map[string]string{"web": "10.0.2.100", "db": "10.0.2.101"}, Endpoints: []Endpoint{
		{Service: "web", Instance: "p-web", Port: 8080, HostIP: "127.0.0.1", HostPort: 18080},
		{Service: "db", Instance: "p-db-1", Port: 6379, HostIP: "127.0.0.1", HostPort: 16379},
		{Service: "db", Instance: "p-db-2", Port: 6379, HostIP: "127.0.0.1", HostPort: 16380},
	}}
	for _, loopback := range []bool{false, true} {
		u := &up{layout: layout, dir: "/h/compose/p", opts: UpOptions{Self: "/bin/ops", HostLoopback: loopback}}
		n := u.userNet(Replica{Service: "web", Instance: "p-web"})
		if n.Restrict == loopback || n.Passt != "" {
			t.Errorf("loopback %v: Restrict %v, Passt %q", loopback, n.Restrict, n.Passt)
		}
		if len(n.Forwards) != 1 || n.Forwards[0].HostPort != 18080 {
			t.Errorf("forwards %+v", n.Forwards)
		}
		if len(n.GuestFwd) != 1 || n.GuestFwd[0].IP != "10.0.2.101" || n.GuestFwd[0].Port != 6379 {
			t.Errorf("guest forwards %+v", n.GuestFwd)
		}
	}
}
