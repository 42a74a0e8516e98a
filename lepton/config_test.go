package lepton

import (
	"strings"
	"testing"
	"time"

	"github.com/opsdev/ops/internal/testutil"
)

func TestDecodeConfig(t *testing.T) {
	cases := []struct {
		name, doc string
		check     func(*Config) bool
		err       string // substring of the error; "" means success
	}{
		{"case-insensitive keys", `{"program": "x", "ARGS": ["a"], "runconfig": {"ports": ["80"], "memory": "1G"}}`,
			func(c *Config) bool {
				return c.Program == "x" && c.Args[0] == "a" && c.RunConfig.Ports[0] == "80" && c.RunConfig.Memory == "1G"
			}, ""},
		{"env map", `{"Env": {"A": "1"}}`, func(c *Config) bool { return c.Env["A"] == "1" }, ""},
		{"passthrough keeps numbers", `{"ManifestPassthrough": {"n": 5, "o": {"x": true}}}`,
			func(c *Config) bool { return c.ManifestPassthrough["n"] != nil }, ""},
		{"accel set", `{"RunConfig": {"Accel": false}}`, func(c *Config) bool { return c.RunConfig.Accel != nil && !*c.RunConfig.Accel }, ""},
		{"unknown key names key and line", "{\n  \"Program\": \"x\",\n  \"Porgram\": 1\n}", nil, `3: unknown key "Porgram": did you mean "Program"?`},
		{"unknown nested key", "{\"RunConfig\": {\n\"Portz\": []}}", nil, `2: unknown key "Portz": did you mean "Ports"?`},
		{"unknown key far from any", "{\"Zzzzzzzz\": 1}", nil, `1: unknown key "Zzzzzzzz" (the README's`},
		{"wrong type", "{\n\"Args\": \"notalist\"}", nil, "2: Args must be a list"},
		{"wrong nested type", "{\"RunConfig\": {\n\"CPUs\": \"two\"}}", nil, "2: RunConfig.CPUs must be a whole number"},
		{"syntax error line", "{\n\"Program\": \"x\",,\n}", nil, "2: invalid JSON"},
		{"empty file", "", nil, "empty"},
		{"bad guest", `{"Guest": "windows"}`, nil, `Guest: "windows" is not a guest`},
		{"trailing data", `{} {}`, nil, "unexpected data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{}
			err := decodeConfig([]byte(tc.doc), c)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("decoded %+v", c)
			}
		})
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	p := t.TempDir() + "/config.json"
	testutil.WriteFile(t, p, "{\"Bogus\": 1}")
	_, err := LoadConfig(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":1: unknown key") {
		t.Fatalf("error %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"512M", 512 << 20, false}, {"2G", 2 << 30, false}, {"100m", 100 << 20, false}, {"1048576", 1 << 20, false},
		{"1.5G", 3 << 29, false}, {"64MiB", 64 << 20, false}, {"", 0, false}, {"12X", 0, true}, {"G", 0, true},
	} {
		got, err := ParseSize(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(`{"Program":"x","RunConfig":{"Ports":["80"]}}`))
	f.Add([]byte("{\n\"Args\": 1}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &Config{}
		_ = decodeConfig(b, c)
	})
}

func TestOpsHomeIsUnderOpsHome(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"/x", "/x/.ops"},            // nanovms/ops: OPS_HOME names the folder holding .ops
		{"/srv/ci/", "/srv/ci/.ops"}, // a trailing slash changes nothing
	} {
		t.Setenv("OPS_HOME", tc.env)
		h, err := DefaultHome()
		if err != nil || h.Dir != tc.want {
			t.Errorf("OPS_HOME=%s: %q %v, want %q", tc.env, h.Dir, err, tc.want)
		}
	}
}

func TestParseAge(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"1w", 7 * day, false}, {"300d", 300 * day, false}, {"3m", 90 * day, false}, {"2y", 730 * day, false},
		{"36h", 36 * time.Hour, false}, {"", 0, true}, {"w", 0, true}, {"2x", 0, true}, {"-1d", 0, true},
	} {
		got, err := ParseAge(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q: %v %v, want %v (error %t)", tc.in, got, err, tc.want, tc.err)
		}
	}
}
