package lepton

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	opsfs "github.com/opsdev/ops/fs"
)

// planFor makes a plan of /bin/true with c, named "my_app".
func planFor(t *testing.T, c *Config) *Plan {
	t.Helper()
	p, err := newPlan(PlanInput{Config: c, Program: "/bin/true", Dir: t.TempDir(), ImageName: "my_app", OpsVersion: "1.2",
		GuestEnv: map[string]string{"NANOS_VERSION": "0.1.99"}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fileText(t *testing.T, p *Plan, path string) string {
	t.Helper()
	e, ok := p.Tree.Get(path)
	if !ok {
		return ""
	}
	if e.Data != nil {
		return string(e.Data)
	}
	b, err := os.ReadFile(e.Source)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func env(p *Plan) map[string]string {
	m := map[string]string{}
	for _, e := range p.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("app:x:1000:1000::/home/app:/bin/sh\n"), 0o644)
	for _, tc := range []struct {
		name  string
		c     *Config
		check func(t *testing.T, p *Plan)
	}{
		{"present", &Config{}, func(t *testing.T, p *Plan) {
			for path, want := range map[string]string{
				"/etc/passwd":        "nobody:x:65534:65534:",
				"/etc/group":         "nogroup:x:65534:",
				"/etc/hostname":      "my-app\n",
				"/etc/hosts":         "10.0.2.15\tmy-app\n",
				"/etc/resolv.conf":   "nameserver 10.0.2.3\n",
				"/etc/nsswitch.conf": "hosts: files dns\n",
			} {
				if got := fileText(t, p, path); !strings.Contains(got, want) {
					t.Errorf("%s: %q, want it to hold %q", path, got, want)
				}
			}
			if e, ok := p.Tree.Get("/tmp"); !ok || e.Kind != opsfs.KindDir {
				t.Error("no /tmp")
			}
			if _, err := os.Stat(hostCABundle); err == nil {
				if e, ok := p.Tree.Get(hostCABundle); !ok || e.Source != hostCABundle {
					t.Error("no CA bundle")
				}
			}
			e := env(p)
			for k, v := range map[string]string{"HOME": "/", "USER": "root", "PWD": "/", "PATH": defaultPath,
				"OPS_VERSION": "1.2", "NANOS_VERSION": "0.1.99", "IMAGE_NAME": "my_app"} {
				if e[k] != v {
					t.Errorf("%s=%q, want %q", k, e[k], v)
				}
			}
			if p.Hostname != "my-app" || len(p.Defaults) < 7 {
				t.Errorf("hostname %q defaults %v", p.Hostname, p.Defaults)
			}
		}},
		{"overridden by the user", &Config{Env: map[string]string{"HOME": "/home/app", "PATH": "/opt"},
			Hostname: "web.example", CwdPath: "/srv", RunConfig: RunConfig{Ports: []string{"8080-8081"}}}, func(t *testing.T, p *Plan) {
			e := env(p)
			if e["HOME"] != "/home/app" || e["PATH"] != "/opt" || e["PWD"] != "/srv" || e["OPS_PORT"] != "8080" {
				t.Errorf("env %v", e)
			}
			if got := fileText(t, p, "/etc/hostname"); got != "web.example\n" {
				t.Errorf("hostname file %q", got)
			}
		}},
		{"user's /etc/passwd wins", &Config{MapDirs: map[string]string{filepath.Join(dir, "etc", "passwd"): "/etc"}}, func(t *testing.T, p *Plan) {
			if got := fileText(t, p, "/etc/passwd"); !strings.HasPrefix(got, "app:") {
				t.Errorf("/etc/passwd %q", got)
			}
			if slices.Contains(p.Defaults, "/etc/passwd") {
				t.Error("/etc/passwd listed as added")
			}
		}},
		{"name servers and a tap", &Config{NameServers: []string{"9.9.9.9"}, RunConfig: RunConfig{TapName: "t0", IPAddress: "10.3.0.5"}}, func(t *testing.T, p *Plan) {
			if got := fileText(t, p, "/etc/resolv.conf"); got != "nameserver 9.9.9.9\n" {
				t.Errorf("resolv.conf %q", got)
			}
			if got := fileText(t, p, "/etc/hosts"); !strings.Contains(got, "10.3.0.5\tmy-app") {
				t.Errorf("hosts %q", got)
			}
		}},
		{"tap with DHCP: the lease names the resolver", &Config{RunConfig: RunConfig{Bridged: true, TapName: "t0"}}, func(t *testing.T, p *Plan) {
			if _, ok := p.Tree.Get("/etc/resolv.conf"); ok {
				t.Error("resolv.conf written for a DHCP guest")
			}
		}},
		{"turned off", &Config{NoDefaults: true}, func(t *testing.T, p *Plan) {
			for _, path := range []string{"/etc/passwd", "/etc/hostname", "/etc/resolv.conf", "/tmp", hostCABundle} {
				if _, ok := p.Tree.Get(path); ok {
					t.Errorf("%s added with NoDefaults", path)
				}
			}
			if len(p.Env) != 0 || len(p.Defaults) != 0 {
				t.Errorf("env %v defaults %v", p.Env, p.Defaults)
			}
			if got := fileText(t, p, "/etc/hosts"); !strings.Contains(got, "localhost") {
				t.Errorf("hosts %q", got)
			}
		}},
		{"argv0", &Config{Argv0: "busybox", Args: []string{"ls"}}, func(t *testing.T, p *Plan) {
			if strings.Join(p.Args, " ") != "busybox ls" {
				t.Errorf("args %v", p.Args)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, planFor(t, tc.c)) })
	}
}

func TestHostname(t *testing.T) {
	for in, want := range map[string]string{"my_app": "my-app", "Server.v2": "server-v2", "__": "ops", strings.Repeat("a", 70): strings.Repeat("a", 63)} {
		if got := hostnameFor(in); got != want {
			t.Errorf("hostnameFor(%q) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"-x", "a..b", "under_score", strings.Repeat("a", 64)} {
		if _, err := newPlan(PlanInput{Config: &Config{Hostname: bad}, Program: "/bin/true", Dir: "/"}); err == nil || !strings.Contains(err.Error(), "Hostname") {
			t.Errorf("Hostname %q: error %v", bad, err)
		}
	}
}
