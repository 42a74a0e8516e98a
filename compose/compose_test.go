package compose

import (
	"strings"
	"testing"
)

const taxi = `
name: taxi
services:
  redis:
    program: /usr/bin/redis-server
    expose: [6379]
  passenger:
    program: ./bin/passenger
    expose: [8080]
  trip:
    program: ./bin/trip
    expose: [8080]
    ports: ["18080:8080"]
`

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ doc, err string }{
		{"services: {}", "no services"},
		{"services:\n  a:\n    program: x\n    bogus: 1\n", "bogus"},
		{"services:\n  Bad_Name:\n    program: x\n", "lower-case"},
		{"services:\n  a:\n    args: [x]\n", "either program or package"},
		{"services:\n  a:\n    program: x\n    package: y\n", "either program or package"},
		{"services:\n  a:\n    program: x\n    expose: [70000]\n", "not a port"},
		{"services:\n  a:\n    program: x\n    guest: bsd\n", "use nanos or linux"},
		{"name: Bad Name\nservices:\n  a:\n    program: x\n", "lower-case"},
	} {
		if _, err := Parse([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want %q", tc.doc, err, tc.err)
		}
	}
}

func TestLayoutUserMode(t *testing.T) {
	f, err := Parse([]byte(taxi))
	if err != nil {
		t.Fatal(err)
	}
	next := 40000
	n, err := f.Layout(UserMode, "", func() (int, error) { next++; return next, nil })
	if err != nil {
		t.Fatal(err)
	}
	// Sorted names: passenger, redis, trip.
	if n.Addr["passenger"] != "10.0.2.100" || n.Addr["redis"] != "10.0.2.101" || n.Addr["trip"] != "10.0.2.102" {
		t.Fatalf("addresses %v", n.Addr)
	}
	want := map[string]int{"passenger/8080": 40001, "redis/6379": 40002, "trip/8080": 18080}
	for _, e := range n.Endpoints {
		k := e.Service + "/" + itoa(e.Port)
		if want[k] != e.HostPort {
			t.Errorf("%s on host port %d, want %d", k, e.HostPort, want[k])
		}
		delete(want, k)
	}
	if len(want) > 0 {
		t.Fatalf("missing endpoints %v", want)
	}
	hosts := string(n.Hosts("trip", "10.0.2.15"))
	for _, line := range []string{"10.0.2.100\tpassenger", "10.0.2.101\tredis", "10.0.2.15\ttrip", "127.0.0.1\tlocalhost"} {
		if !strings.Contains(hosts, line) {
			t.Errorf("hosts lacks %q:\n%s", line, hosts)
		}
	}
}

func TestLayoutBridged(t *testing.T) {
	f, _ := Parse([]byte(taxi))
	n, err := f.Layout(Bridged, "10.3.0.0/24", func() (int, error) { return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	if n.Gateway != "10.3.0.1" || n.Addr["passenger"] != "10.3.0.10" || n.Addr["trip"] != "10.3.0.12" {
		t.Fatalf("%+v", n)
	}
	if _, err := f.Layout(Bridged, "10.3.0.0/30", nil); err == nil {
		t.Fatal("a /30 was accepted")
	}
	if _, err := f.Layout(Bridged, "nonsense", nil); err == nil {
		t.Fatal("a bad subnet was accepted")
	}
}

func itoa(i int) string {
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(taxi))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse(b)
	})
}
