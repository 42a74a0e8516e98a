package ociruntime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const minimalSpec = `{"ociVersion":"1.0.2","process":{"args":["/hello","3"],"cwd":"/"},"root":{"path":"rootfs"}}`

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name, in, err string
	}{
		{"minimal", minimalSpec, ""},
		{"podman's shape", `{"ociVersion":"1.0.2-dev","process":{"user":{"uid":0,"gid":0,"umask":18},"args":["/hello"],"env":["PATH=/bin"],"cwd":"/",
			"capabilities":{"bounding":["CAP_CHOWN"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":20000,"soft":20000}]},
			"root":{"path":"/var/lib/x"},"hostname":"h","mounts":[{"destination":"/proc","type":"proc","source":"proc"}],
			"annotations":{"a":"b"},"linux":{"namespaces":[{"type":"network","path":"/run/netns/x"}],"seccomp":{"defaultAction":"SCMP_ACT_ERRNO"},"cgroupsPath":"/libpod"}}`, ""},
		{"no version", `{"process":{"args":["/a"]},"root":{"path":"r"}}`, "no ociVersion"},
		{"no process", `{"ociVersion":"1","root":{"path":"r"}}`, "no process"},
		{"empty args", `{"ociVersion":"1","process":{"args":[]},"root":{"path":"r"}}`, "process.args is empty"},
		{"empty first arg", `{"ociVersion":"1","process":{"args":[""]},"root":{"path":"r"}}`, "process.args is empty"},
		{"no root", `{"ociVersion":"1","process":{"args":["/a"]}}`, "no root.path"},
		{"relative mount", `{"ociVersion":"1","process":{"args":["/a"]},"root":{"path":"r"},"mounts":[{"destination":"etc"}]}`, "not an absolute path"},
		{"relative hook", `{"ociVersion":"1","process":{"args":["/a"]},"root":{"path":"r"},"hooks":{"prestart":[{"path":"hook"}]}}`, "hooks.prestart path"},
		{"zero timeout", `{"ociVersion":"1","process":{"args":["/a"]},"root":{"path":"r"},"hooks":{"poststop":[{"path":"/h","timeout":0}]}}`, "timeout 0"},
		{"relative namespace", `{"ociVersion":"1","process":{"args":["/a"]},"root":{"path":"r"},"linux":{"namespaces":[{"type":"network","path":"x"}]}}`, "namespace path"},
		{"syntax", `{"ociVersion":`, "config.json"},
		{"wrong type", `{"ociVersion":"1","process":{"args":"/a"},"root":{"path":"r"}}`, "process.args"},
		{"two values", minimalSpec + minimalSpec, "more than one JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSpec([]byte(tt.in))
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.Process == nil || len(s.Process.Args) == 0 || s.Root == nil {
					t.Fatalf("parsed %+v", s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is more than one line: %q", err)
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(minimalSpec))
	f.Add([]byte(`{"ociVersion":"1","process":{"args":["/a"]},"root":{"path":"r"},"hooks":{"prestart":[{"path":"/h","timeout":3}]},"linux":{"namespaces":[{"type":"network"}]}}`))
	f.Add([]byte(`{"ociVersion":"1","process":{"args":["/a"]},"root":{"path":"r"},"mounts":[{"destination":"/etc/hosts","type":"bind","source":"/x","options":["ro"]}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSpec(b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is more than one line: %q", err)
			}
			return
		}
		if s.Process == nil || len(s.Process.Args) == 0 || s.Process.Args[0] == "" || s.Root == nil || s.Root.Path == "" {
			t.Fatalf("accepted a spec without what create needs: %+v", s)
		}
		s.NetworkNamespace()
		s.Ignored()
		s.RootPath("/bundle")
		planMounts(nil)
	})
}

func TestReadSpec(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadSpec(dir); err == nil || !strings.Contains(err.Error(), "has no config.json") {
		t.Fatalf("missing config.json: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"ociVersion":"1"}`), 0o644)
	if _, err := ReadSpec(dir); err == nil || !strings.Contains(err.Error(), dir+"/config.json: no process") {
		t.Fatalf("bad config.json: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(minimalSpec), 0o644)
	s, err := ReadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.RootPath(dir); got != filepath.Join(dir, "rootfs") {
		t.Fatalf("RootPath %s", got)
	}
	s.Root.Path = "/abs/./root"
	if got := s.RootPath(dir); got != "/abs/root" {
		t.Fatalf("RootPath %s", got)
	}
}

func TestNetworkNamespace(t *testing.T) {
	tests := []struct {
		name  string
		ns    []Namespace
		path  string
		isNew bool
	}{
		{"none: the runtime's", nil, "", false},
		{"new", []Namespace{{Type: "pid"}, {Type: "network"}}, "", true},
		{"joined", []Namespace{{Type: "network", Path: "/run/netns/x"}}, "/run/netns/x", false},
		{"other namespaces only", []Namespace{{Type: "uts"}}, "", false},
	}
	for _, tt := range tests {
		s := &Spec{Linux: &Linux{Namespaces: tt.ns}}
		p, n := s.NetworkNamespace()
		if p != tt.path || n != tt.isNew {
			t.Errorf("%s: got %q %v, want %q %v", tt.name, p, n, tt.path, tt.isNew)
		}
	}
}

func TestIgnored(t *testing.T) {
	s, err := ParseSpec([]byte(`{"ociVersion":"1","process":{"args":["/a"],"user":{"uid":1000},"rlimits":[{"type":"RLIMIT_NOFILE"}],"capabilities":{"bounding":[]},"apparmorProfile":"x"},
		"root":{"path":"r"},"linux":{"seccomp":{},"cgroupsPath":"/c"},"hooks":{"createContainer":[{"path":"/h"}],"startContainer":[{"path":"/h"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.Ignored(), "; ")
	for _, want := range []string{"user 1000:0", "rlimits", "capabilities", "apparmorProfile", "seccomp", "createContainer hooks", "startContainer hooks"} {
		if !strings.Contains(got, want) {
			t.Errorf("Ignored() = %q, lacks %q", got, want)
		}
	}
	s, _ = ParseSpec([]byte(minimalSpec))
	if ign := s.Ignored(); len(ign) != 0 {
		t.Errorf("minimal spec: ignored %v", ign)
	}
}
