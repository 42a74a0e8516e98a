package guestinit

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestManifestJSON: the manifest ops writes is the one init reads back,
// under the keys below; what is left out of a manifest without volumes,
// shares, late modules, DHCP or debugging is left out of its JSON.
func TestManifestJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Manifest
		json string
	}{
		{"static network", Manifest{
			Program: "/hello", Args: []string{"/hello", "-a"}, Env: []string{"PATH=/bin", "X=a=b"}, Cwd: "/",
			Modules: []string{"/.ops/modules/00-virtio_net.ko"},
			Net:     Net{Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}},
		}, `{"program":"/hello","args":["/hello","-a"],"env":["PATH=/bin","X=a=b"],"cwd":"/","modules":["/.ops/modules/00-virtio_net.ko"],` +
			`"net":{"address":"10.0.2.15/24","gateway":"10.0.2.2","dns":["10.0.2.3"]}}`},
		{"DHCP, volumes, late modules, debugging", Manifest{
			Program: "/redis-server", Args: []string{"redis-server"}, Cwd: "/data",
			LateModules: []string{"/.ops/modules/late-00-button.ko"},
			Net:         Net{DHCP: true},
			Mounts:      []Mount{{Label: "data", Path: "/data"}, {Label: "conf", Path: "/etc/redis", ReadOnly: true}},
			Debug:       true,
		}, `{"program":"/redis-server","args":["redis-server"],"env":null,"cwd":"/data","modules":null,"late_modules":["/.ops/modules/late-00-button.ko"],` +
			`"net":{"dhcp":true,"address":"","gateway":"","dns":null},` +
			`"mounts":[{"label":"data","path":"/data"},{"label":"conf","path":"/etc/redis","readonly":true}],"debug":true}`},
		{"shares beside a volume", Manifest{
			Program: "/app", Modules: []string{"/.ops/modules/00-fuse.ko", "/.ops/modules/01-virtiofs.ko"},
			Mounts: []Mount{{Label: "data", Path: "/data"}},
			Shares: []Share{{Tag: "0", Path: "/srv"}, {Tag: "1", Path: "/etc/app", ReadOnly: true}},
		}, `{"program":"/app","args":null,"env":null,"cwd":"","modules":["/.ops/modules/00-fuse.ko","/.ops/modules/01-virtiofs.ko"],` +
			`"net":{"address":"","gateway":"","dns":null},"mounts":[{"label":"data","path":"/data"}],` +
			`"shares":[{"tag":"0","path":"/srv"},{"tag":"1","path":"/etc/app","readonly":true}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.json {
				t.Errorf("JSON\n%s\nwant\n%s", b, tc.json)
			}
			var back Manifest
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.m) {
				t.Errorf("read back as %+v\nwant %+v", back, tc.m)
			}
		})
	}
}

// TestRunInfoLine: the host's line reads back as what it sent, and lines
// that are not one are refused.
func TestRunInfoLine(t *testing.T) {
	seed := bytes.Repeat([]byte{0xa5, 0x01}, runInfoSeed/2)
	info, err := NewRunInfo(bytes.NewReader(seed), time.Unix(1796531656, 123456789))
	if err != nil {
		t.Fatal(err)
	}
	line := info.Line()
	if !bytes.HasSuffix(line, []byte("\n")) || !bytes.HasPrefix(line, []byte("ops-run 1796531656123456789 a501a501")) {
		t.Fatalf("line %q", line)
	}
	got, err := ParseRunInfo(line)
	if err != nil || got.Time != info.Time || !bytes.Equal(got.Seed, seed) {
		t.Fatalf("ParseRunInfo = %+v, %v", got, err)
	}
	withOwn := RunInfo{Seed: seed, Time: 5, Own: 1536, MAC: "52:54:00:12:34:56"}
	if got, err := ParseRunInfo(withOwn.Line()); err != nil || got.Own != 1536 || got.MAC != withOwn.MAC {
		t.Fatalf("ParseRunInfo(%q) = %+v, %v", withOwn.Line(), got, err)
	}
	noMAC := RunInfo{Seed: seed, Time: 5, Own: 7}
	if got, err := ParseRunInfo(noMAC.Line()); err != nil || got.Own != 7 || got.MAC != "" {
		t.Fatalf("ParseRunInfo(%q) = %+v, %v", noMAC.Line(), got, err)
	}
	for _, bad := range []string{"", "ready\n", "ops-run 12\n",
		"ops-run 1 " + strings.Repeat("00", runInfoSeed) + " -3 -\n", "ops-run 1 " + strings.Repeat("00", runInfoSeed) + " 3 zz\n",
		"ops-run 1 " + strings.Repeat("00", runInfoSeed) + " 3\n", "ops-run -1 " + strings.Repeat("00", runInfoSeed) + "\n",
		"ops-run 1 " + strings.Repeat("00", runInfoSeed-1) + "\n", "ops-run 1 zz\n", "ops-run x " + strings.Repeat("00", runInfoSeed) + "\n"} {
		if _, err := ParseRunInfo([]byte(bad)); err == nil {
			t.Errorf("ParseRunInfo(%q) took it", bad)
		}
	}
	if _, err := NewRunInfo(bytes.NewReader(seed[:3]), time.Now()); err == nil {
		t.Error("a short seed was taken")
	}
}

func FuzzParseRunInfo(f *testing.F) {
	info, _ := NewRunInfo(bytes.NewReader(make([]byte, runInfoSeed)), time.Unix(1, 2))
	f.Add(info.Line())
	f.Add([]byte("ops-run 1 00\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseRunInfo(b)
		if err != nil {
			return
		}
		// What parses is a whole run line, and says the same again.
		again, err := ParseRunInfo(got.Line())
		if err != nil || again.Time != got.Time || !bytes.Equal(again.Seed, got.Seed) {
			t.Fatalf("%q: %+v then %+v, %v", b, got, again, err)
		}
	})
}

// TestExitLine: each exit code's line reads back as that code, with or
// without its newline; lines that are not one are refused.
func TestExitLine(t *testing.T) {
	for _, code := range []int{0, 1, 7, 42, 127, 128, 255} {
		line := ExitLine(code)
		if want := "exit " + strconv.Itoa(code) + "\n"; string(line) != want {
			t.Errorf("ExitLine(%d) = %q, want %q", code, line, want)
		}
		for _, l := range [][]byte{line, bytes.TrimSuffix(line, []byte("\n"))} {
			if got, ok := ParseExitLine(l); !ok || got != code {
				t.Errorf("ParseExitLine(%q) = %d, %v", l, got, ok)
			}
		}
	}
	for _, tc := range []struct{ name, line string }{
		{"empty", ""},
		{"no code", "exit \n"},
		{"no space", "exit7\n"},
		{"two spaces", "exit  7\n"},
		{"a sign", "exit +7\n"},
		{"negative", "exit -1\n"},
		{"a leading zero", "exit 07\n"},
		{"beyond 255", "exit 256\n"},
		{"a long number", "exit 0000000000000000007\n"},
		{"not a number", "exit seven\n"},
		{"trailing text", "exit 7 now\n"},
		{"two newlines", "exit 7\n\n"},
		{"a carriage return", "exit 7\r\n"},
		{"the host's acknowledgement", ExitAck},
		{"the snapshot point's line", SnapshotReady},
		{"capitals", "EXIT 7\n"},
	} {
		if got, ok := ParseExitLine([]byte(tc.line)); ok {
			t.Errorf("%s: ParseExitLine(%q) took it as %d", tc.name, tc.line, got)
		}
	}
}

func FuzzParseExitLine(f *testing.F) {
	for _, s := range []string{"exit 0\n", "exit 7", "exit 255\n", "exit 256\n", "exit 07\n", "exit -1\n", "ok\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		code, ok := ParseExitLine(b)
		if !ok {
			return
		}
		// What parses is an exit code's one line, newline or not.
		if code < 0 || code > 255 {
			t.Fatalf("%q: code %d out of range", b, code)
		}
		line := ExitLine(code)
		if !bytes.Equal(b, line) && !bytes.Equal(b, line[:len(line)-1]) {
			t.Fatalf("%q read as %d, whose line is %q", b, code, line)
		}
	})
}

// TestFileLine: a file's line reads back; others do not.
func TestFileLine(t *testing.T) {
	if p, n, ok := ParseFileLine(FileLine("/dev/termination-log", 12)); !ok || p != "/dev/termination-log" || n != 12 {
		t.Fatalf("ParseFileLine = %q %d %v", p, n, ok)
	}
	if p, n, ok := ParseFileLine(FileLine("/etc/a b", 0)); !ok || p != "/etc/a b" || n != 0 {
		t.Fatalf("a name with a space: %q %d %v", p, n, ok)
	}
	for _, bad := range []string{"exit 3\n", "file -1 /a\n", "file 1 a\n", "file x /a\n", "file 99999999999 /a\n", "file 3\n"} {
		if _, _, ok := ParseFileLine([]byte(bad)); ok {
			t.Errorf("%q read as a file line", bad)
		}
	}
}
