package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/opsdev/ops/ociruntime"
)

// runRuntime runs the ops-runtime command tree with args and returns
// what it printed and the error.
func runRuntime(t *testing.T, args ...string) (string, *runtimeLog, error) {
	t.Helper()
	var out bytes.Buffer
	app := &App{Stdout: &out, Stderr: &out}
	lg := &runtimeLog{}
	t.Cleanup(lg.close)
	root := newRuntimeRoot(app, &runtimeGlobals{}, lg, ociruntime.Config{}, nil)
	root.SetArgs(args)
	_, err := root.ExecuteC()
	return out.String(), lg, err
}

// TestRuntimeFlags checks that the command lines engines send parse:
// each reaches the runtime, which answers for the unknown container.
func TestRuntimeFlags(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	bundle := filepath.Join(dir, "bundle")
	os.Mkdir(bundle, 0o755)
	tests := []struct {
		name string
		args []string
		err  string // "" for none
	}{
		{"containerd create", []string{"--root", root, "--log", filepath.Join(dir, "log.json"), "--log-format", "json", "--systemd-cgroup",
			"create", "--bundle", bundle, "--pid-file", filepath.Join(bundle, "init.pid"), "--console-socket", "/tmp/s", "--no-pivot", "--no-new-keyring", "id1"},
			"has no config.json"},
		{"podman create", []string{"create", "--root", root, "-b", bundle, "--pid-file", filepath.Join(bundle, "pid"), "id1"}, "has no config.json"},
		{"preserve-fds", []string{"--root", root, "create", "--preserve-fds", "2", "--bundle", bundle, "id1"}, "has no config.json"},
		{"runc's other globals", []string{"--root", root, "--debug", "--criu", "criu", "--rootless", "false", "start", "id1"}, "container id1 does not exist"},
		{"start", []string{"--root", root, "start", "id1"}, "does not exist"},
		{"state", []string{"--root", root, "state", "id1"}, "does not exist"},
		{"kill", []string{"--root", root, "kill", "id1"}, "does not exist"},
		{"kill --all SIG", []string{"--root", root, "kill", "--all", "id1", "KILL"}, "does not exist"},
		{"kill -a number", []string{"--root", root, "kill", "-a", "id1", "9"}, "does not exist"},
		{"kill bad signal", []string{"--root", root, "kill", "id1", "NOPE"}, `signal "NOPE": not a signal name`},
		{"delete", []string{"--root", root, "delete", "id1"}, "does not exist"},
		{"delete --force unknown", []string{"--root", root, "delete", "--force", "id1"}, ""},
		{"delete -f unknown", []string{"--root", root, "delete", "-f", "id1"}, ""},
		{"ps", []string{"--root", root, "ps", "--format", "json", "id1"}, "does not exist"},
		{"ps with ps arguments", []string{"--root", root, "ps", "-f", "json", "id1", "--", "-ef"}, "does not exist"},
		{"exec", []string{"--root", root, "exec", "--process", "/tmp/p.json", "--detach", "--pid-file", "/tmp/p", "id1"}, "a unikernel runs one program: exec is not supported"},
		{"pause", []string{"--root", root, "pause", "id1"}, "pause is not supported"},
		{"resume", []string{"resume", "id1"}, "resume is not supported"},
		{"update", []string{"update", "--resources", "-", "id1"}, "update is not supported"},
		{"checkpoint", []string{"checkpoint", "--image-path", "/x", "id1"}, "checkpoint is not supported"},
		{"no ID", []string{"--root", root, "start"}, "start takes one container ID"},
		{"bad ID", []string{"--root", root, "state", "../x"}, `container ID "../x"`},
		{"bad log format", []string{"--log-format", "xml", "--root", root, "state", "x"}, `--log-format "xml"`},
		{"unknown flag", []string{"--root", root, "start", "--frobnicate", "id1"}, "unknown flag: --frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runRuntime(t, tt.args...)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestRuntimeVersionAndFeatures(t *testing.T) {
	for _, flag := range []string{"--version", "-v"} {
		out, _, err := runRuntime(t, flag)
		if err != nil || !strings.HasPrefix(out, "ops-runtime version ") || !strings.Contains(out, "spec: ") {
			t.Fatalf("%s: %q %v", flag, out, err)
		}
	}
	out, _, err := runRuntime(t, "features")
	var f map[string]any
	if err != nil || json.Unmarshal([]byte(out), &f) != nil || f["ociVersionMax"] == nil {
		t.Fatalf("features: %q %v", out, err)
	}
}

// TestRuntimeLog checks --log's two formats: an error is one line, a
// JSON object with level, msg and time, or logrus's text.
func TestRuntimeLog(t *testing.T) {
	dir := t.TempDir()
	for _, format := range []string{"json", "text"} {
		log := filepath.Join(dir, format+".log")
		os.WriteFile(log, []byte("earlier\n"), 0o644)
		code := func() int {
			old := os.Stderr
			devnull, _ := os.Open(os.DevNull)
			os.Stderr = devnull
			defer func() { os.Stderr = old; devnull.Close() }()
			return RuntimeMain(RuntimeName, []string{"--root", dir, "--log", log, "--log-format", format, "start", "nope"})
		}()
		if code != 1 {
			t.Fatalf("%s: exit %d", format, code)
		}
		b, _ := os.ReadFile(log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || lines[0] != "earlier" {
			t.Fatalf("%s: log %q", format, b)
		}
		if format == "json" {
			var l struct{ Level, Msg, Time string }
			if err := json.Unmarshal([]byte(lines[1]), &l); err != nil || l.Level != "error" || l.Msg != "container nope does not exist" || l.Time == "" {
				t.Fatalf("json line %q (%v)", lines[1], err)
			}
		} else if !strings.Contains(lines[1], `level=error msg="container nope does not exist"`) {
			t.Fatalf("text line %q", lines[1])
		}
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
		ok   bool
	}{
		{"TERM", syscall.SIGTERM, true},
		{"SIGTERM", syscall.SIGTERM, true},
		{"kill", syscall.SIGKILL, true},
		{"9", syscall.SIGKILL, true},
		{"15", syscall.SIGTERM, true},
		{"SIGWINCH", syscall.SIGWINCH, true},
		{"0", 0, false},
		{"65", 0, false},
		{"NOPE", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSignal(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSignal(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestDefaultRuntimeRoot(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	if got := defaultRuntimeRoot(env("")); got != "/run/ops-runtime" {
		t.Errorf("no XDG_RUNTIME_DIR: %s", got)
	}
	if got := defaultRuntimeRoot(env("/run/user/1000")); got != "/run/user/1000/ops-runtime" {
		t.Errorf("XDG_RUNTIME_DIR: %s", got)
	}
}

// TestRuntimeConfigRoot checks that ops-runtime.json beside the link
// names the state folder when no --root is given, and that a bad one is
// one error line.
func TestRuntimeConfigRoot(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "state")
	os.MkdirAll(filepath.Join(root, "c1"), 0o711)
	os.WriteFile(filepath.Join(root, "c1", "state.json"), []byte(`{"id":"c1","status":"stopped","bundle":"/b"}`), 0o600)
	link := filepath.Join(dir, RuntimeName)
	os.WriteFile(filepath.Join(dir, ociruntime.ConfigName), []byte(`{"root":"`+root+`"}`), 0o644)
	old := os.Stdout
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	os.Stdout = devnull
	code := RuntimeMain(link, []string{"state", "c1"})
	os.Stdout = old
	devnull.Close()
	if code != 0 {
		t.Fatalf("state of a container under the configured root: exit %d", code)
	}
	os.WriteFile(filepath.Join(dir, ociruntime.ConfigName), []byte(`{"root":"relative"}`), 0o644)
	_, _, err := func() (string, *runtimeLog, error) {
		conf, cerr := ociruntime.LoadConfig(filepath.Join(dir, ociruntime.ConfigName))
		var out bytes.Buffer
		lg := &runtimeLog{}
		r := newRuntimeRoot(&App{Stdout: &out, Stderr: &out}, &runtimeGlobals{}, lg, conf, cerr)
		r.SetArgs([]string{"state", "c1"})
		_, err := r.ExecuteC()
		return out.String(), lg, err
	}()
	if err == nil || !strings.Contains(err.Error(), `root "relative" is not an absolute path`) {
		t.Fatalf("relative root: %v", err)
	}
}

// TestRuntimeHandsPodSandboxToRunc checks that a pod's sandbox container
// goes to runc: create records it and becomes runc with the engine's
// command line as it came, every later command for the ID too, delete
// runs runc and removes the record, and another container of the same
// ID is ops's again.
func TestRuntimeHandsPodSandboxToRunc(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	link := filepath.Join(dir, "bin", RuntimeName)
	os.MkdirAll(filepath.Dir(link), 0o755)
	runc := filepath.Join(dir, "bin", "runc")
	ran := filepath.Join(dir, "ran")
	os.WriteFile(runc, []byte("#!/bin/sh\necho \"$*\" >> "+ran+"\n"), 0o755)
	bundle := filepath.Join(dir, "bundle")
	os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755)
	writeSpec := func(kind string) {
		os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion": "1.0.2", "process": {"args": ["/pause"], "cwd": "/"},
			"root": {"path": "rootfs"}, "annotations": {"io.kubernetes.cri.container-type": "`+kind+`"}}`), 0o644)
	}
	type call struct {
		path string
		argv []string
	}
	var execs []call
	run := func(args ...string) error {
		t.Helper()
		var out bytes.Buffer
		g := &runtimeGlobals{args: args, link: link, exec: func(path string, argv, env []string) error {
			execs = append(execs, call{path, argv})
			return nil
		}}
		lg := &runtimeLog{}
		defer lg.close()
		r := newRuntimeRoot(&App{Stdout: &out, Stderr: &out}, g, lg, ociruntime.Config{}, nil)
		r.SetArgs(args)
		_, err := r.ExecuteC()
		var ee *ExitError
		if errors.As(err, &ee) && ee.Code == 0 {
			return nil
		}
		return err
	}
	writeSpec("sandbox")
	create := []string{"--root", root, "--log", filepath.Join(dir, "log.json"), "--log-format", "json", "create", "--bundle", bundle,
		"--pid-file", filepath.Join(bundle, "init.pid"), "pod1"}
	for _, args := range [][]string{
		create,
		{"--root", root, "start", "pod1"},
		{"--root", root, "state", "pod1"},
		{"--root", root, "kill", "pod1", "9"},
		{"--root", root, "ps", "--format", "json", "pod1"},
		{"--root", root, "exec", "--process", "/tmp/p.json", "--detach", "--pid-file", "/tmp/p", "pod1"},
		{"--root", root, "update", "--resources", "-", "pod1"},
	} {
		execs = nil
		if err := run(args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if len(execs) != 1 || execs[0].path != runc || !slices.Equal(execs[0].argv, append([]string{"runc"}, args...)) {
			t.Fatalf("%v: exec %v, want runc with the same arguments", args, execs)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "pod1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ops made a container folder for the sandbox: %v", err)
	}
	execs = nil
	if err := run("--root", root, "delete", "--force", "pod1"); err != nil || len(execs) != 0 {
		t.Fatalf("delete: %v (exec %v)", err, execs)
	}
	if b, _ := os.ReadFile(ran); strings.TrimSpace(string(b)) != "--root "+root+" delete --force pod1" {
		t.Fatalf("runc ran %q, want the delete", b)
	}
	if _, ok, _ := (ociruntime.Store{Root: root}).Delegated("pod1"); ok {
		t.Fatal("the hand-off record is left after delete")
	}
	if err := run("--root", root, "state", "pod1"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("state after delete: %v", err)
	}
	// A record left behind (a create whose engine never deleted) does not
	// take the next container of that ID from ops.
	ociruntime.Store{Root: root}.Delegate("pod1", runc)
	execs = nil
	if err := run("--root", root, "create", "--bundle", filepath.Join(dir, "none"), "pod1"); err == nil || !strings.Contains(err.Error(), "has no config.json") || len(execs) != 0 {
		t.Fatalf("create of an unreadable bundle: %v (exec %v)", err, execs)
	}
	if _, ok, _ := (ociruntime.Store{Root: root}).Delegated("pod1"); ok {
		t.Fatal("a new container of the ID is still handed to runc")
	}
}

// TestRuntimeUnsupportedLogs checks that a command a unikernel cannot do
// reads the global flags, so the error line reaches --log, where
// containerd's shim (docker exec) reads it.
func TestRuntimeUnsupportedLogs(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log.json")
	old := os.Stderr
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	os.Stderr = devnull
	code := RuntimeMain(RuntimeName, []string{"--root", dir, "--log", log, "--log-format", "json", "exec", "--process", "/tmp/p.json",
		"--detach", "--pid-file", "/tmp/p", "id1"})
	os.Stderr = old
	devnull.Close()
	if code != 1 {
		t.Fatalf("exec: exit %d", code)
	}
	b, _ := os.ReadFile(log)
	var l struct{ Level, Msg string }
	if err := json.Unmarshal(bytes.TrimSpace(b), &l); err != nil || l.Level != "error" || l.Msg != "a unikernel runs one program: exec is not supported" {
		t.Fatalf("log %q (%v)", b, err)
	}
}
