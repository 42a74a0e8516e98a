package compose

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestServiceConfig checks how a service's keys lay over its config file:
// args add, env and memory set, the service's guest beats the project's.
func TestServiceConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"Args": ["--base"], "Env": {"A": "config", "B": "config"}, "RunConfig": {"Memory": "1G"}, "Guest": "nanos"}`
	if err := os.WriteFile(filepath.Join(dir, "svc.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := `
services:
  plain:
    program: ./p
  full:
    program: ./p
    config: svc.json
    args: [--port, "80"]
    env: {B: service, C: service}
    memory: 2G
    guest: linux
  configured:
    program: ./p
    config: svc.json
`
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		Args   []string
		Env    map[string]string
		Memory string
		Guest  string
	}
	for _, tc := range []struct {
		service, defaultGuest string
		want                  got
	}{
		{"plain", "", got{nil, map[string]string{}, "", ""}},
		{"plain", "linux", got{nil, map[string]string{}, "", "linux"}},
		{"full", "nanos", got{[]string{"--base", "--port", "80"}, map[string]string{"A": "config", "B": "service", "C": "service"}, "2G", "linux"}},
		{"configured", "linux", got{[]string{"--base"}, map[string]string{"A": "config", "B": "config"}, "1G", "linux"}},
		{"configured", "", got{[]string{"--base"}, map[string]string{"A": "config", "B": "config"}, "1G", "nanos"}},
	} {
		c, err := f.ServiceConfig(tc.service, tc.defaultGuest)
		if err != nil {
			t.Fatal(err)
		}
		g := got{c.Args, c.Env, c.RunConfig.Memory, c.Guest}
		if !reflect.DeepEqual(g, tc.want) {
			t.Errorf("%s (default guest %q): %+v, want %+v", tc.service, tc.defaultGuest, g, tc.want)
		}
	}
}
