package ociruntime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// script writes an executable shell script (the tests' hooks).
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunHooks(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	save := script(t, dir, "save", `cat > "$1"; echo "$# $X" >> "$1.args"`)
	fail := script(t, dir, "fail", `echo first; echo "no network for you" >&2; exit 3`)
	slow := script(t, dir, "slow", `sleep 5`)
	one := 1
	st := State{OCIVersion: SpecVersion, ID: "c1", Status: Creating, Pid: 42, Bundle: "/b"}

	if err := runHooks("prestart", []Hook{{Path: save, Args: []string{"hook0", out}, Env: []string{"X=y"}}}, st); err != nil {
		t.Fatal(err)
	}
	var got State
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &got); err != nil || got.ID != "c1" || got.Pid != 42 || got.Status != Creating {
		t.Fatalf("the hook read %s (%v)", b, err)
	}
	if args, _ := os.ReadFile(out + ".args"); string(args) != "1 y\n" {
		t.Fatalf("arguments and environment: %q", args)
	}

	err := runHooks("prestart", []Hook{{Path: save, Args: []string{"s", out}}, {Path: fail}, {Path: save, Args: []string{"s", out + "2"}}}, st)
	if err == nil || err.Error() != "prestart hook "+fail+": exit status 3: no network for you" {
		t.Fatalf("failing hook: %v", err)
	}
	if _, err := os.Stat(out + "2"); err == nil {
		t.Fatal("a hook after the failing one ran")
	}

	start := time.Now()
	err = runHooks("poststop", []Hook{{Path: slow, Timeout: &one}}, st)
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") || time.Since(start) > 4*time.Second {
		t.Fatalf("timeout: %v after %v", err, time.Since(start))
	}
	if err := runHooks("poststart", nil, st); err != nil {
		t.Fatal(err)
	}
}

func TestFindHome(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	tests := []struct {
		name      string
		getenv    func(string) string
		conf      Config
		dir, from string
	}{
		{"OPS_HOME wins", env("OPS_HOME", "/o", "HOME", "/root"), Config{Home: "/c"}, "/o/.ops", "OPS_HOME"},
		{"the configuration file", env("HOME", "/root"), Config{Home: "/srv/ops"}, "/srv/ops", ConfigName},
		{"HOME", env("HOME", "/root"), Config{}, "/root/.ops", "HOME"},
	}
	for _, tt := range tests {
		h, from, err := FindHome(tt.getenv, tt.conf)
		if err != nil || h.Dir != tt.dir || from != tt.from {
			t.Errorf("%s: %s from %s (%v), want %s from %s", tt.name, h.Dir, from, err, tt.dir, tt.from)
		}
	}
	if _, _, err := FindHome(env(), Config{}); err == nil || !strings.Contains(err.Error(), "ops runtime install --home") {
		t.Errorf("no home: %v", err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ConfigName)
	if c, err := LoadConfig(p); err != nil || c != (Config{}) {
		t.Fatalf("missing file: %+v %v", c, err)
	}
	os.WriteFile(p, []byte(`{"home":"/h","guest":"nanos"}`), 0o644)
	if c, err := LoadConfig(p); err != nil || c.Home != "/h" || c.Guest != "nanos" {
		t.Fatalf("%+v %v", c, err)
	}
	os.WriteFile(p, []byte(`{"guest":"bsd"}`), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "guest") {
		t.Fatalf("bad guest: %v", err)
	}
	os.WriteFile(p, []byte(`{"home":`), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("bad JSON: %v", err)
	}
	if got := ConfigPath("/usr/local/bin/ops-runtime"); got != "/usr/local/bin/"+ConfigName {
		t.Fatalf("ConfigPath %s", got)
	}
}
