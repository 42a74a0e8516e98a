package cmd

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
	"github.com/spf13/pflag"
)

// TestNanovmsCompat is the compatibility table: what a nanovms/ops user
// types (argv, config.json, the environment) and what ops makes of it —
// the merged config, the port forwards and the line about them, the
// Nanos manifest options and klibs, and the QEMU arguments. Rows marked
// "docs" are nanovms/ops's own documented examples.
func TestNanovmsCompat(t *testing.T) {
	for _, tc := range []struct {
		name   string
		argv   []string
		config string            // config.json, "" for none
		env    map[string]string // environment
		check  func(t *testing.T, r compatResult)
		err    string // the one error line, when the input is refused
	}{
		{name: "docs: -p 8080 forwards 8080 (on 127.0.0.1 here)", argv: []string{"-p", "8080"}, check: func(t *testing.T, r compatResult) {
			r.qemuHas(t, "hostfwd=tcp:127.0.0.1:8080-:8080")
		}},
		{name: "-p 8080-80 is host 8080 to guest 80, with a line saying so", argv: []string{"-p", "8080-80"}, check: func(t *testing.T, r compatResult) {
			r.qemuHas(t, "hostfwd=tcp:127.0.0.1:8080-:80")
			r.saysOnce(t, "-p 8080-80 forwards host port 8080 to guest port 80")
		}},
		{name: "ascending ranges forward each port to itself", argv: []string{"-p", "9000-9002"}, check: func(t *testing.T, r compatResult) {
			r.qemuHas(t, "hostfwd=tcp:127.0.0.1:9000-:9000,hostfwd=tcp:127.0.0.1:9001-:9001,hostfwd=tcp:127.0.0.1:9002-:9002")
			r.saysNothing(t)
		}},
		{name: "config ports with HOST-GUEST too", config: `{"RunConfig": {"Ports": ["8443-443"], "UDPPorts": ["5353-53"]}}`, check: func(t *testing.T, r compatResult) {
			r.qemuHas(t, "hostfwd=tcp:127.0.0.1:8443-:443", "hostfwd=udp:127.0.0.1:5353-:53")
		}},
		{name: "docs: -a replaces the config's Args", argv: []string{"-a", "b", "-a", "c"}, config: `{"Args": ["a"]}`, check: func(t *testing.T, r compatResult) {
			r.equal(t, "Args", r.c.Args, []string{"b", "c"})
		}},
		{name: "config Args stay without -a", config: `{"Args": ["a"]}`, check: func(t *testing.T, r compatResult) {
			r.equal(t, "Args", r.c.Args, []string{"a"})
		}},
		{name: "docs: -e sets a variable over the config's", argv: []string{"-e", "K=flag"}, config: `{"Env": {"K": "file", "O": "file"}}`, check: func(t *testing.T, r compatResult) {
			r.equal(t, "Env", r.c.Env, map[string]string{"K": "flag", "O": "file"})
		}},
		{name: "ops_render_config=true expands $VAR", config: `{"Env": {"DB": "$DB_URL"}, "RunConfig": {"Memory": "${MEM}"}}`,
			env: map[string]string{"ops_render_config": "true", "DB_URL": "pg://x", "MEM": "1G"}, check: func(t *testing.T, r compatResult) {
				r.equal(t, "Env", r.c.Env, map[string]string{"DB": "pg://x"})
				r.equal(t, "Memory", r.c.RunConfig.Memory, "1G")
				r.qemuHas(t, "-m 1024M")
			}},
		{name: "without ops_render_config $VAR stays as written", config: `{"Env": {"DB": "$DB_URL"}}`, env: map[string]string{"DB_URL": "pg://x"},
			check: func(t *testing.T, r compatResult) { r.equal(t, "Env", r.c.Env, map[string]string{"DB": "$DB_URL"}) }},
		{name: "MapDirs start from the config file's folder", config: `{"MapDirs": {"assets/*": "/www"}}`, check: func(t *testing.T, r compatResult) {
			r.equal(t, "LocalFilesParentDirectory", r.c.LocalFilesParentDirectory, r.dir)
		}},
		{name: "docs: --trace sets the trace options and adds strace", argv: []string{"--trace", "--no-trace", "futex", "--no-trace", "clock_gettime"}, check: func(t *testing.T, r compatResult) {
			r.manifest(t, map[string]any{"trace": "t", "debugsyscalls": "t", "fault": "t", "futex_trace": "t", "notrace": []any{"futex", "clock_gettime"}})
			r.equal(t, "klibs", r.c.NanosKlibs(), []string{"strace"})
		}},
		{name: "--syscall-summary and --missing-files", argv: []string{"--syscall-summary", "--missing-files"}, config: `{"Klibs": ["ntp"]}`, check: func(t *testing.T, r compatResult) {
			r.manifest(t, map[string]any{"syscall_summary": "t", "missing_files": "t"})
			r.equal(t, "klibs", r.c.NanosKlibs(), []string{"ntp", "strace"})
		}},
		{name: "config Debugflags, NoTrace and RebootOnExit are acted on", config: `{"Debugflags": ["fault"], "NoTrace": ["read"], "RebootOnExit": true}`, check: func(t *testing.T, r compatResult) {
			r.manifest(t, map[string]any{"fault": "t", "notrace": []any{"read"}, "reboot_on_exit": "t"})
			r.qemuLacks(t, "-no-reboot")
		}},
		{name: "without RebootOnExit a guest reset ends QEMU", check: func(t *testing.T, r compatResult) { r.qemuHas(t, "-no-reboot") }},
		{name: "docs: -d waits for a debugger on 1234, without ASLR", argv: []string{"-d"}, check: func(t *testing.T, r compatResult) {
			r.qemuHas(t, "-gdb tcp::1234 -S")
			r.manifest(t, map[string]any{"noaslr": "t"})
			r.saysOnce(t, "waiting for a debugger")
		}},
		{name: "-g opens the gdb stub without waiting", argv: []string{"-g", "2345"}, check: func(t *testing.T, r compatResult) {
			r.qemuHas(t, "-gdb tcp::2345")
			r.qemuLacks(t, " -S")
		}},
		{name: "--qmp with RunConfig.Mgmt", argv: []string{"--qmp"}, config: `{"RunConfig": {"Mgmt": "4444"}}`, check: func(t *testing.T, r compatResult) {
			r.qemuHas(t, "-qmp tcp:127.0.0.1:4444,server=on,wait=off")
			r.saysOnce(t, "QMP monitor on 127.0.0.1:4444")
		}},
		{name: "--ip-address, --gateway, --netmask", argv: []string{"--ip-address", "10.0.2.20", "--gateway", "10.0.2.2", "--netmask", "255.255.255.0"}, check: func(t *testing.T, r compatResult) {
			rc := r.c.RunConfig
			r.equal(t, "address", []string{rc.IPAddress, rc.Gateway, rc.NetMask}, []string{"10.0.2.20", "10.0.2.2", "255.255.255.0"})
		}},
		{name: "--bridgeipaddress", argv: []string{"--bridgeipaddress", "10.3.0.1/24"}, check: func(t *testing.T, r compatResult) {
			r.equal(t, "BridgeIPAddress", r.c.RunConfig.BridgeIPAddress, "10.3.0.1/24")
		}},
		{name: "--consoles", argv: []string{"--consoles", "+net"}, check: func(t *testing.T, r compatResult) {
			r.manifest(t, map[string]any{"consoles": []any{"+net"}, "netconsole_port": "4444", "netconsole_ip": "10.0.2.2"})
		}},
		{name: "-f, --disable-args-copy, --show-debug", argv: []string{"-f", "--disable-args-copy", "--show-debug"}, check: func(t *testing.T, r compatResult) {
			r.equal(t, "flags", []bool{r.c.Force, r.c.DisableArgsCopy, r.c.RunConfig.ShowDebug, r.c.RunConfig.Verbose}, []bool{true, true, true, true})
		}},
		{name: "--arch x86_64 is amd64", argv: []string{"--arch", "x86_64"}, check: func(t *testing.T, r compatResult) {
			r.equal(t, "Arch", r.c.Arch, "x86_64")
		}},
		{name: "--arch aarch64 is arm64", argv: []string{"--arch", "aarch64"}, check: func(t *testing.T, r compatResult) {
			r.equal(t, "Arch", r.c.Arch, "aarch64")
		}},
		{name: "--arch of another machine is one line", argv: []string{"--arch", "riscv64"}, err: `Arch (--arch): "riscv64" is not an architecture ops builds for`},
		{name: "docs: -n says what it needs", argv: []string{"-n", "-p", "8080"}, err: "-n/NightlyBuild: nightly Nanos builds are downloaded"},
		{name: "keys not acted on are named in one warning", config: `{"CloudConfig": {"ProjectID": "p"}, "RunConfig": {"Nics": [{"IPAddress": "1.2.3.4"}], "GPUs": 1}}`, check: func(t *testing.T, r compatResult) {
			r.saysOnce(t, "ops: warning: ignored here: CloudConfig, RunConfig.GPUs, RunConfig.Nics (")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			r, err := compatRun(t, tc.argv, tc.config)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line starting %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
}

type compatResult struct {
	c    *lepton.Config
	dir  string // the config file's folder
	qemu string // the QEMU arguments, space-joined
	says string // what ops prints on stderr before it boots
}

// compatRun parses argv as ops run does (with the root's --show-*), reads
// the config, prints what ops prints before a boot and makes the QEMU
// arguments of a microvm for the result.
func compatRun(t *testing.T, argv []string, config string) (compatResult, error) {
	r := compatResult{dir: t.TempDir()}
	if config != "" {
		p := filepath.Join(r.dir, "config.json")
		if err := os.WriteFile(p, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		argv = append([]string{"-c", p}, argv...)
	}
	f := &runFlags{}
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	f.register(fs)
	fs.Bool("show-debug", false, "")
	if err := fs.Parse(argv); err != nil {
		return r, err
	}
	c, err := f.configFrom(fs)
	if err != nil {
		return r, err
	}
	var stderr bytes.Buffer
	app := &App{Stdout: &bytes.Buffer{}, Stderr: &stderr}
	configNotices(app, c)
	if err := runNotices(app, c, "./prog"); err != nil {
		return r, err
	}
	net, err := c.RunConfig.Net()
	if err != nil {
		return r, err
	}
	// The forwards in QEMU's own network's syntax, whether or not passt
	// serves them (it takes the same list: qemu's TestPasstArgs).
	net.Passt, net.Restrict = "", false
	vm := qemu.VM{Kernel: "kernel.img", Net: net}
	c.RunConfig.DebugVM(&vm)
	if vm.MemoryMB, err = c.RunConfig.MemoryMB(); err != nil {
		return r, err
	}
	args, err := vm.Args()
	if err != nil {
		return r, err
	}
	r.c, r.qemu, r.says = c, strings.Join(args, " "), stderr.String()
	return r, nil
}

func (r compatResult) qemuHas(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.qemu, w) {
			t.Errorf("QEMU arguments lack %q:\n%s", w, r.qemu)
		}
	}
}

func (r compatResult) qemuLacks(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(r.qemu, s) {
		t.Errorf("QEMU arguments have %q:\n%s", s, r.qemu)
	}
}

func (r compatResult) saysOnce(t *testing.T, s string) {
	t.Helper()
	if strings.Count(r.says, s) != 1 || strings.Count(r.says, "\n") != 1 {
		t.Errorf("want one line with %q, ops said:\n%s", s, r.says)
	}
}

func (r compatResult) saysNothing(t *testing.T) {
	t.Helper()
	if r.says != "" {
		t.Errorf("ops said:\n%s", r.says)
	}
}

func (r compatResult) manifest(t *testing.T, want map[string]any) {
	t.Helper()
	r.equal(t, "manifest options", r.c.ManifestOptions(), want)
}

func (r compatResult) equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %#v, want %#v", what, got, want)
	}
}

// TestHelpListsCompatFlags: every nanovms/ops flag ops takes shows in
// the help of the commands that take it.
func TestHelpListsCompatFlags(t *testing.T) {
	root := NewRoot(&App{Stdout: &strings.Builder{}, Stderr: &strings.Builder{}})
	build := []string{"--ip-address", "--disable-args-copy", "--consoles", "--nightly", "--arch", "--trace", "--no-trace", "--syscall-summary", "--missing-files", "--target-root"}
	run := append([]string{"--bridgeipaddress", "--gdbport", "--qmp", "--force", "--debug", "--port"}, build...)
	global := []string{"--show-debug", "--show-warnings", "--show-errors"}
	for _, tc := range []struct {
		path  []string
		flags []string
	}{
		{[]string{"run"}, append(run, global...)},
		{[]string{"pkg", "load"}, run},
		{[]string{"build"}, build},
		{[]string{"image", "create"}, build},
		{[]string{"image", "ls"}, []string{"--long-format", "--bootfs"}},
		{[]string{"image", "tree"}, []string{"--bootfs"}},
		{[]string{"image", "delete"}, []string{"--lru", "--older-than"}},
		{[]string{"image", "cp"}, []string{"--recursive", "--dereference", "--bootfs"}},
		{nil, global},
	} {
		c, _, err := root.Find(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		c.SetOut(&out)
		c.Help()
		for _, f := range tc.flags {
			if !strings.Contains(out.String(), f) {
				t.Errorf("ops %s --help lacks %s", strings.Join(tc.path, " "), f)
			}
		}
	}
}
