package lepton

import (
	"strings"
	"testing"
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
		{"unknown key names key and line", "{\n  \"Program\": \"x\",\n  \"Porgram\": 1\n}", nil, `3: unknown key "Porgram"`},
		{"unknown nested key", "{\"RunConfig\": {\n\"Portz\": []}}", nil, `2: unknown key "Portz"`},
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
			err := DecodeConfig([]byte(tc.doc), c)
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
	writeFile(t, p, "{\"Bogus\": 1}")
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
		_ = DecodeConfig(b, c)
	})
}
