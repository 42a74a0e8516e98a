package cmd

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opsdev/ops/lepton"
	"github.com/spf13/pflag"
)

// TestFlagsOverConfig checks the rule every command that builds follows:
// a flag overrides config.json only when the user set it.
func TestFlagsOverConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	doc := `{"Args": ["a"], "Env": {"K": "config", "ONLY": "config"}, "Guest": "linux",
	         "RunConfig": {"Ports": ["80"], "Memory": "1G", "CPUs": 2, "Accel": false, "ImageName": "img", "Verbose": true}}`
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	no := false
	yes := true
	fromConfig := func() *lepton.Config {
		return &lepton.Config{Args: []string{"a"}, Env: map[string]string{"K": "config", "ONLY": "config"}, Guest: "linux", LocalFilesParentDirectory: dir,
			RunConfig: lepton.RunConfig{Ports: []string{"80"}, Memory: "1G", CPUs: 2, Accel: &no, ImageName: "img", Verbose: true}}
	}
	for _, tc := range []struct {
		name string
		argv []string
		want func(c *lepton.Config)
	}{
		{"config alone", []string{"-c", cfg}, func(c *lepton.Config) {}},
		{"unset flags keep the config's values, defaults included", []string{"-c", cfg, "--smp", "2"}, func(c *lepton.Config) {}},
		{"-a replaces Args, as in nanovms/ops", []string{"-c", cfg, "-a", "b", "-a", "c"}, func(c *lepton.Config) { c.Args = []string{"b", "c"} }},
		{"-e sets one variable", []string{"-c", cfg, "-e", "K=flag"}, func(c *lepton.Config) { c.Env["K"] = "flag" }},
		{"-p adds to Ports", []string{"-c", cfg, "-p", "8080"}, func(c *lepton.Config) { c.RunConfig.Ports = []string{"80", "8080"} }},
		{"set flags win", []string{"-c", cfg, "-m", "2G", "--smp", "4", "--accel=true", "-i", "other", "--guest", "nanos", "-v=false"}, func(c *lepton.Config) {
			c.RunConfig.Memory, c.RunConfig.CPUs, c.RunConfig.Accel, c.RunConfig.ImageName, c.Guest, c.RunConfig.Verbose = "2G", 4, &yes, "other", "nanos", false
		}},
		{"network flags", []string{"-c", cfg, "-t", "tap0", "--bridgename", "br0", "--ip", "10.9.0.5", "--gateway", "10.9.0.1", "--netmask", "255.255.255.0", "-b"}, func(c *lepton.Config) {
			rc := &c.RunConfig
			rc.TapName, rc.BridgeName, rc.IPAddress, rc.Gateway, rc.NetMask, rc.Bridged = "tap0", "br0", "10.9.0.5", "10.9.0.1", "255.255.255.0", true
		}},
		{"debug and machine", []string{"-c", cfg, "-d", "--machine", "q35", "--udp", "53"}, func(c *lepton.Config) {
			c.RunConfig.Debug, c.RunConfig.Machine, c.RunConfig.UDPPorts = true, "q35", []string{"53"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// run and pkg load share runFlags; build shares its buildFlags part.
			f := &runFlags{}
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			f.register(fs)
			if err := fs.Parse(tc.argv); err != nil {
				t.Fatal(err)
			}
			got, err := f.configFrom(fs)
			if err != nil {
				t.Fatal(err)
			}
			want := fromConfig()
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestBuildFlags checks that build takes the build flags only: run's
// flags are unknown to it, and --json is its own.
func TestBuildFlags(t *testing.T) {
	build := newBuildCmd(&App{})
	if err := build.ParseFlags([]string{"-p", "80"}); err == nil {
		t.Error("build accepted -p")
	}
	if build.Flags().Lookup("json") == nil {
		t.Error("build has no --json")
	}
	if newRunCmd(&App{}).Flags().Lookup("json") != nil {
		t.Error("run accepts --json and would ignore it")
	}
	load := newLoadCmd(&App{})
	if load.Flags().Lookup("local") == nil || load.Flags().Lookup("port") == nil {
		t.Error("pkg load lacks -l or -p")
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"-e", "NOEQUALS"}, `-e "NOEQUALS": write K=V`},
		{[]string{"--guest", "bsd"}, `--guest: "bsd" is not a guest; use nanos or linux`},
	} {
		f := &buildFlags{}
		fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
		f.register(fs)
		if err := fs.Parse(tc.argv); err != nil {
			t.Fatal(err)
		}
		if _, err := f.configFrom(fs); err == nil || err.Error() != tc.want {
			t.Errorf("%v: error %v, want %q", tc.argv, err, tc.want)
		}
	}
}

// TestStringArrayFlag checks ops's stringArray against pflag's: each value
// kept whole (commas too), in order, the first replacing the default, and
// the same help text.
func TestStringArrayFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, nil},
		{[]string{"-a", "x"}, []string{"x"}},
		{[]string{"-a", "x", "--args", "y,z", "--args="}, []string{"x", "y,z", ""}},
	} {
		var ours, theirs []string
		a := pflag.NewFlagSet("ours", pflag.ContinueOnError)
		stringArrayVarP(a, &ours, "args", "a", "usage")
		b := pflag.NewFlagSet("pflag", pflag.ContinueOnError)
		b.StringArrayVarP(&theirs, "args", "a", nil, "usage")
		if err := a.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := b.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ours, tc.want) || !slices.Equal(theirs, tc.want) {
			t.Errorf("%q: ours %q, pflag's %q, want %q", tc.args, ours, theirs, tc.want)
		}
		if a.FlagUsages() != b.FlagUsages() {
			t.Errorf("help differs:\n%s\n%s", a.FlagUsages(), b.FlagUsages())
		}
	}
}

// TestRunSkipBuildRefusesBuildFlags: -s boots the image as it was built,
// so -a and -e, which only a build takes, are one clear error rather than
// ignored.
func TestRunSkipBuildRefusesBuildFlags(t *testing.T) {
	t.Setenv("OPS_HOME", t.TempDir())
	for _, args := range [][]string{
		{"run", "-s", "-i", "app", "-a", "x"},
		{"run", "-s", "-i", "app", "-e", "K=V"},
	} {
		_, err := runOps(t, args...)
		if err == nil || !strings.Contains(err.Error(), "-s boots the image as it is") {
			t.Errorf("ops %v: %v", args, err)
		}
	}
}
