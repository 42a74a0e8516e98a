package compose

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/qemu"
)

const taxi = `
name: taxi
services:
  redis:
    image: redis:7
    healthcheck: {test: ["CMD", "redis-cli", "ping"], interval: 1s}
  passenger:
    x-ops: {program: ./bin/passenger}
    expose: ["8080"]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:8080/healthz"]
      interval: 2s
      timeout: 1s
      retries: 5
      start_period: 30s
  trip:
    x-ops: {program: ./bin/trip}
    ports: ["18080:8080"]
    depends_on:
      passenger: {condition: service_healthy}
      redis: {condition: service_healthy}
  dispatcher:
    x-ops: {program: ./bin/dispatcher}
    expose: ["8080"]
    depends_on: [redis]
    deploy: {replicas: 2, resources: {limits: {memory: 300M, cpus: "1.5"}}}
    restart: on-failure
`

func parse(t *testing.T, doc string) *File {
	t.Helper()
	f, err := Parse([]byte(doc), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseTaxi(t *testing.T) {
	f := parse(t, taxi)
	if f.Name != "taxi" || len(f.Services) != 4 || len(f.Warnings) != 0 {
		t.Fatalf("%+v %q", f, f.Warnings)
	}
	d := f.Services["dispatcher"]
	if d.Replicas != 2 || d.Memory != "300M" || d.CPUs != 2 || d.Restart != "on-failure" || d.DependsOn["redis"] != Started || d.Program != "./bin/dispatcher" {
		t.Fatalf("dispatcher %+v", d)
	}
	p := f.Services["passenger"].Health
	want := &Health{Port: 8080, Path: "/healthz", Interval: 2 * time.Second, Timeout: time.Second, StartPeriod: 30 * time.Second, Retries: 5}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("passenger health %+v, want %+v", p, want)
	}
	r := f.Services["redis"].Health
	if r.Port != 6379 || r.Send != "PING\r\n" || r.Expect != "+PONG" || r.Timeout != 30*time.Second || r.Retries != 3 {
		t.Fatalf("redis health %+v", r)
	}
	// The health port is reachable even though redis exposes nothing.
	if !reflect.DeepEqual(f.Services["redis"].Expose, []int{6379}) {
		t.Fatalf("redis expose %v", f.Services["redis"].Expose)
	}
	if got := f.Services["trip"].Ports; !reflect.DeepEqual(got, []Publish{{HostIP: "127.0.0.1", Host: 18080, Guest: 8080}}) {
		t.Fatalf("trip ports %+v", got)
	}
	order, err := f.order()
	if err != nil || strings.Join(order, " ") != "redis dispatcher passenger trip" {
		t.Fatalf("order %v %v", order, err)
	}
}

// TestParseSpecExamples reads examples from the Compose Specification
// (spec.md and its per-key pages) that apply to ops, each with what ops
// makes of it.
func TestParseSpecExamples(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		check     func(*File) bool
		warnings  []string
	}{
		{"command shell form", "services:\n  app:\n    image: x\n    command: bundle exec thin -p 3000\n",
			func(f *File) bool {
				return reflect.DeepEqual(f.Services["app"].Command, []string{"bundle", "exec", "thin", "-p", "3000"})
			}, nil},
		{"entrypoint list", "services:\n  app:\n    image: x\n    entrypoint: [\"php\", \"-d\", \"memory_limit=-1\", \"vendor/bin/phpunit\"]\n",
			func(f *File) bool { return len(f.Services["app"].Entrypoint) == 4 && f.Services["app"].Command == nil }, nil},
		{"environment map and list", "services:\n  a:\n    image: x\n    environment:\n      RACK_ENV: development\n      SHOW: \"true\"\n  b:\n    image: x\n    environment: [\"RACK_ENV=development\", \"SHOW=true\"]\n",
			func(f *File) bool {
				return f.Services["a"].Env["SHOW"] == "true" && f.Services["b"].Env["RACK_ENV"] == "development"
			}, nil},
		{"ports short syntax", "services:\n  app:\n    image: x\n    ports: [\"3000\", \"8000:8000\", \"127.0.0.1:8001:8001\", \"9090-9091:8080-8081\"]\n",
			func(f *File) bool {
				p := f.Services["app"].Ports
				return len(p) == 5 && p[0].Host == 0 && p[0].Guest == 3000 && p[1].Host == 8000 && p[3].Host == 9090 && p[3].Guest == 8080 && p[4].Host == 9091
			}, nil},
		{"ports long syntax", "services:\n  app:\n    image: x\n    ports:\n      - target: 80\n        host_ip: 127.0.0.1\n        published: \"8080\"\n        protocol: tcp\n",
			func(f *File) bool {
				p := f.Services["app"].Ports
				return len(p) == 1 && p[0].Host == 8080 && p[0].Guest == 80
			}, nil},
		{"depends_on long syntax", "services:\n  web:\n    image: x\n    depends_on:\n      db:\n        condition: service_healthy\n        restart: true\n      redis:\n        condition: service_started\n  redis:\n    image: redis\n  db:\n    image: postgres\n    healthcheck: {test: [\"CMD-SHELL\", \"nc -z localhost 5432\"]}\n",
			func(f *File) bool {
				w := f.Services["web"]
				return w.DependsOn["db"] == Healthy && w.DependsOn["redis"] == Started && f.Services["db"].Health.Port == 5432 && f.Services["db"].Health.Path == ""
			}, nil},
		{"healthcheck CMD-SHELL curl", "services:\n  app:\n    image: x\n    healthcheck:\n      test: [\"CMD-SHELL\", \"curl -f http://localhost/ || exit 1\"]\n      interval: 1m30s\n      timeout: 10s\n      retries: 3\n      start_period: 40s\n      start_interval: 5s\n",
			func(f *File) bool {
				h := f.Services["app"].Health
				return h.Port == 80 && h.Path == "/" && h.Interval == 90*time.Second && h.StartInterval == 5*time.Second
			}, nil},
		{"healthcheck string form wget", "services:\n  app:\n    image: x\n    healthcheck:\n      test: wget -q --spider http://127.0.0.1:3000/health\n",
			func(f *File) bool { h := f.Services["app"].Health; return h.Port == 3000 && h.Path == "/health" }, nil},
		{"healthcheck disable", "services:\n  app:\n    image: x\n    healthcheck:\n      disable: true\n",
			func(f *File) bool { return f.Services["app"].Health == nil }, nil},
		{"named volume", "services:\n  db:\n    image: postgres\n    volumes:\n      - db-data:/etc/data\n      - type: volume\n        source: logs\n        target: /var/log\n        read_only: true\nvolumes:\n  db-data:\n  logs:\n",
			func(f *File) bool {
				m := f.Services["db"].Mounts
				return reflect.DeepEqual(f.Volumes, []string{"db-data", "logs"}) && len(m) == 2 && m[1].ReadOnly && f.volumeName("db-data") == "project_db-data"
			}, nil},
		{"deploy resources", "services:\n  redis:\n    image: redis:alpine\n    deploy:\n      resources:\n        limits:\n          cpus: '0.50'\n          memory: 50M\n          pids: 1\n        reservations:\n          cpus: '0.25'\n          memory: 20M\n",
			func(f *File) bool { s := f.Services["redis"]; return s.CPUs == 1 && s.Memory == "50M" },
			[]string{"services.redis.deploy.resources.limits.pids: ignored", "services.redis.deploy.resources.reservations: ignored"}},
		{"meaningless keys warn", "services:\n  app:\n    image: x\n    build: .\n    privileged: true\n    cap_add: [ALL]\n    devices: [\"/dev/ttyUSB0:/dev/ttyUSB0\"]\n    networks: [front]\nnetworks:\n  front: {}\n",
			func(f *File) bool { return true },
			[]string{"services.app.build: ignored: ops does not build", "services.app.privileged: ignored: a unikernel runs one program", "services.app.cap_add: ignored", "services.app.devices: ignored: a unikernel VM gets no host devices", "services.app.networks: ignored", "networks: ignored"}},
		{"x-ops", "services:\n  app:\n    x-ops: {package: eyberg/node:20, local: true, guest: linux, config: c.json}\n    command: [hi.js]\n    working_dir: /app\n    hostname: web\n",
			func(f *File) bool {
				s := f.Services["app"]
				return s.Package == "eyberg/node:20" && s.Local && s.Guest == "linux" && s.Config == "c.json" && s.WorkingDir == "/app" && s.Hostname == "web"
			}, nil},
		{"x-ops program over image", "services:\n  app:\n    image: web:1\n    x-ops: {program: ./bin/web}\n",
			func(f *File) bool { s := f.Services["app"]; return s.Image == "" && s.Program == "./bin/web" }, nil},
		{"profiles", "services:\n  app:\n    image: x\n  debug:\n    image: y\n    profiles: [debug]\n",
			func(f *File) bool { _, ok := f.Services["debug"]; return !ok && len(f.Services) == 1 }, nil},
		{"extends", "services:\n  base:\n    image: x\n    environment: {A: \"1\"}\n  app:\n    extends: base\n    environment: {B: \"2\"}\n",
			func(f *File) bool { e := f.Services["app"].Env; return e["A"] == "1" && e["B"] == "2" }, nil},
		{"platform", "services:\n  a:\n    image: x\n    platform: linux/arm64\n  b:\n    image: x\n    platform: linux/amd64\n  c:\n    image: x\n    platform: linux/arm64/v8\n  d:\n    x-ops: {program: ./d}\n    platform: linux/aarch64\n  e:\n    image: x\n",
			func(f *File) bool {
				s := f.Services
				return s["a"].Arch == "arm64" && s["b"].Arch == "amd64" && s["c"].Arch == "arm64" && s["d"].Arch == "arm64" && s["e"].Arch == ""
			}, nil},
		{"interpolation default", "services:\n  app:\n    image: ${IMAGE:-redis:7}\n",
			func(f *File) bool { return f.Services["app"].Image == "redis:7" }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := parse(t, tc.doc)
			if !tc.check(f) {
				t.Errorf("%+v", f.Services)
			}
			if len(tc.warnings) != len(f.Warnings) {
				t.Errorf("warnings %q, want %q", f.Warnings, tc.warnings)
			}
			for _, w := range tc.warnings {
				found := false
				for _, got := range f.Warnings {
					found = found || strings.HasPrefix(got, w)
				}
				if !found {
					t.Errorf("no warning %q in %q", w, f.Warnings)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ doc, err string }{
		{"services: {}", "no services"},
		{"services:\n  a:\n    program: x\n", `"program" is ops's old compose format; move program`},
		{"services:\n  a:\n    image: x\n    x-ops: {bogus: 1}\n", `x-ops: json: unknown field "bogus"`},
		{"services:\n  Bad_Name:\n    image: x\n", "lower-case"},
		{"services:\n  a:\n    command: [x]\n", "give image:"},
		{"services:\n  a:\n    x-ops: {program: x, package: y}\n", "not both"},
		{"services:\n  a:\n    image: x\n    expose: [\"70000\"]\n", "not a port"},
		{"services:\n  a:\n    image: x\n    x-ops: {guest: bsd}\n", "use nanos or linux"},
		{"services:\n  a:\n    image: x\n    depends_on: [a]\n", "a service cannot depend on itself"},
		{"services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n", "cycle"},
		{"services:\n  a:\n    image: x\n    depends_on: [nope]\n", "nope"},
		{"services:\n  a:\n    image: x\n    ports: [\"8080:80\"]\n  b:\n    image: x\n    ports: [\"8080:81\"]\n", "host port 127.0.0.1:8080 is published by a too"},
		{"services:\n  a:\n    image: x\n    healthcheck: {test: [\"CMD\", \"pg_isready\"]}\n", `healthcheck test "CMD pg_isready": a unikernel has no shell`},
		{"services:\n  a:\n    image: x\n    healthcheck: {test: [\"CMD\", \"curl\", \"-f\", \"http://example.com/\"]}\n", "names localhost"},
		{"services:\n  a:\n    image: x\n    healthcheck: {test: [\"CMD-SHELL\", \"nc localhost 80\"]}\n", "only nc -z localhost PORT"},
		{"services:\n  a:\n    image: x\n    depends_on: {b: {condition: service_healthy}}\n  b:\n    image: x\n", "b has no healthcheck"},
		{"services:\n  a:\n    image: x\n    volumes: [\"./data:/data\"]\n", "no such folder or file on this host"},
		{"services:\n  a:\n    image: x\n    volumes: [{type: tmpfs, target: /cache}]\n", "tmpfs mounts have no place in a VM"},
		{"services:\n  a:\n    image: x\n    volumes: [\"vol:/data\"]\n    deploy: {replicas: 2}\nvolumes: {vol: {}}\n", "one VM at a time"},
		{"services:\n  a:\n    image: x\n    restart: sometimes\n", "restart"},
		{"services:\n  a:\n    image: x\n    ports: [\"53:53/udp\"]\n", "TCP ports only"},
		{"services:\n  a:\n    image: x\n    platform: linux/riscv64\n", `platform "linux/riscv64": ops runs linux/amd64 and linux/arm64 programs`},
		{"services:\n  a:\n    image: x\n    platform: windows/amd64\n", `platform "windows/amd64": ops runs linux/amd64 and linux/arm64 programs`},
		{"services:\n  a:\n    image: x\n    platform: arm64\n", `platform "arm64": ops runs linux/amd64 and linux/arm64 programs`},
	} {
		_, err := Parse([]byte(tc.doc), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want %q", tc.doc, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error on more than one line: %q", tc.doc, err)
		}
	}
}

// TestLoadFiles: default file names, several -f merged in order, .env
// and profiles, as docker compose reads them.
func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte("services:\n  app:\n    image: ${IMG}\n    environment: {A: base}\n  dbg:\n    image: y\n    profiles: [debug]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "override.yaml"), []byte("services:\n  app:\n    environment: {A: override}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".env"), []byte("IMG=from-dotenv\n"), 0o644)
	f, err := Load(t.Context(), LoadOptions{WorkDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if f.Services["app"].Image != "from-dotenv" || f.Services["app"].Env["A"] != "base" || len(f.Services) != 1 || f.Dir != dir {
		t.Fatalf("%+v", f.Services["app"])
	}
	f, err = Load(t.Context(), LoadOptions{WorkDir: dir, Files: []string{filepath.Join(dir, "docker-compose.yml"), filepath.Join(dir, "override.yaml")}, Profiles: []string{"debug"}, Env: []string{"IMG=from-env"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Services["app"].Image != "from-env" || f.Services["app"].Env["A"] != "override" || len(f.Services) != 2 {
		t.Fatalf("%+v", f.Services["app"])
	}
	if _, err := Load(t.Context(), LoadOptions{WorkDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no compose file") {
		t.Fatalf("no file: %v", err)
	}
}

func TestLayoutUserMode(t *testing.T) {
	f := parse(t, taxi)
	next := 40000
	n, err := f.layout(UserMode, "", func() (int, error) { next++; return next, nil })
	if err != nil {
		t.Fatal(err)
	}
	// Sorted names: dispatcher, passenger, redis, trip.
	if n.Addr["dispatcher"] != "10.0.2.100" || n.Addr["passenger"] != "10.0.2.101" || n.Addr["trip"] != "10.0.2.103" {
		t.Fatalf("addresses %v", n.Addr)
	}
	got := map[string]int{}
	for _, e := range n.Endpoints {
		got[e.Instance+"/"+itoa(e.Port)] = e.HostPort
	}
	want := map[string]int{"taxi-dispatcher-1/8080": 40001, "taxi-dispatcher-2/8080": 40002, "taxi-passenger/8080": 40003, "taxi-redis/6379": 40004, "taxi-trip/8080": 18080}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("endpoints %v, want %v", got, want)
	}
	if p := n.published(); len(p) != 1 || p[0].Instance != "taxi-trip" {
		t.Fatalf("published %+v", p)
	}
	reps := f.replicasOf("dispatcher")
	hosts := string(n.hosts(reps[1], "10.0.2.15"))
	for _, line := range []string{"10.0.2.101\tpassenger", "10.0.2.15\tdispatcher\n", "10.0.2.15\tdispatcher-2\n", "127.0.0.1\tlocalhost"} {
		if !strings.Contains(hosts, line) {
			t.Errorf("hosts lacks %q:\n%s", line, hosts)
		}
	}
}

func TestLayoutBridged(t *testing.T) {
	f := parse(t, strings.Replace(taxi, "replicas: 2", "replicas: 1", 1))
	n, err := f.layout(Bridged, "10.3.0.0/24", func() (int, error) { return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	if n.Gateway != "10.3.0.1" || n.Addr["dispatcher"] != "10.3.0.10" || n.Addr["trip"] != "10.3.0.13" {
		t.Fatalf("%+v", n)
	}
	if _, err := f.layout(Bridged, "10.3.0.0/30", nil); err == nil {
		t.Fatal("a /30 was accepted")
	}
	if _, err := f.layout(Bridged, "nonsense", nil); err == nil {
		t.Fatal("a bad subnet was accepted")
	}
	// Replicas: the service's address is the host's, each replica has its own.
	n, err = parse(t, taxi).layout(Bridged, "10.3.0.0/24", func() (int, error) { return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"taxi-dispatcher-1": "10.3.0.11", "taxi-dispatcher-2": "10.3.0.12", "taxi-passenger": "10.3.0.13", "taxi-redis": "10.3.0.14", "taxi-trip": "10.3.0.15"}
	if n.Addr["dispatcher"] != "10.3.0.10" || n.Addr["trip"] != "10.3.0.15" || !reflect.DeepEqual(n.ReplicaAddr, want) {
		t.Fatalf("%v %v", n.Addr, n.ReplicaAddr)
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
	f.Add([]byte("services:\n  a:\n    image: x\n    healthcheck: {test: [\"CMD-SHELL\", \"nc -z localhost 80\"]}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse(b, dir)
	})
}

// TestNetSpec: in the project's namespace each replica of dispatcher has
// an address of its own and the service's address is the balancer's; the
// others are at their service's address; every endpoint has a host
// listener leading to its replica there; each replica's passt listens at
// its address on its ports, and nothing else.
func TestNetSpec(t *testing.T) {
	f := parse(t, taxi)
	next := 40000
	n, err := f.layout(UserMode, "", func() (int, error) { next++; return next, nil })
	if err != nil {
		t.Fatal(err)
	}
	n.Namespace = true
	want := map[string]string{"taxi-dispatcher-1": "10.0.3.1", "taxi-dispatcher-2": "10.0.3.2", "taxi-passenger": "10.0.2.101", "taxi-redis": "10.0.2.102", "taxi-trip": "10.0.2.103"}
	if !reflect.DeepEqual(n.ReplicaAddr, want) {
		t.Fatalf("replica addresses %v", n.ReplicaAddr)
	}
	s := f.netSpec(n, false)
	if w := []string{"10.0.2.100", "10.0.3.1", "10.0.3.2", "10.0.2.101", "10.0.2.102", "10.0.2.103"}; !reflect.DeepEqual(s.Addrs, w) {
		t.Errorf("addresses %v, want %v", s.Addrs, w)
	}
	if w := []Balanced{{Service: "dispatcher", Port: 8080, Listen: "10.0.2.100:8080"}}; !reflect.DeepEqual(s.Balance, w) {
		t.Errorf("balancers %+v", s.Balance)
	}
	hosts := map[string]string{}
	for _, h := range s.Host {
		hosts[h.Listen] = h.Instance + " " + h.Target
	}
	if w := map[string]string{"127.0.0.1:40001": "taxi-dispatcher-1 10.0.3.1:8080", "127.0.0.1:40002": "taxi-dispatcher-2 10.0.3.2:8080",
		"127.0.0.1:40003": "taxi-passenger 10.0.2.101:8080", "127.0.0.1:40004": "taxi-redis 10.0.2.102:6379", "127.0.0.1:18080": "taxi-trip 10.0.2.103:8080"}; !reflect.DeepEqual(hosts, w) {
		t.Errorf("host listeners %v, want %v", hosts, w)
	}
	u := &up{file: f, layout: n, dir: "/h/compose/taxi"}
	vn := u.nsNet(f.replicasOf("dispatcher")[1])
	if vn.Namespace != "/h/compose/taxi/net.sock" || len(vn.GuestFwd) != 0 || vn.Restrict ||
		!reflect.DeepEqual(vn.Forwards, []qemu.Forward{{Proto: "tcp", HostIP: "10.0.3.2", HostPort: 8080, GuestPort: 8080}}) {
		t.Errorf("dispatcher-2's network %+v", vn)
	}
	// The balancer reaches the replicas inside the namespace.
	r := routesFor(instance.Store{Dir: "/h/instances"}, n)
	if got := r.Services["dispatcher"]["8080"]; len(got) != 2 || got[1].Addr != "10.0.3.2:8080" {
		t.Errorf("routes %+v", got)
	}
}

func TestLocalURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		port int
		path string
		err  string
	}{
		{"http://localhost:8080/healthz", 8080, "/healthz", ""},
		{"http://localhost", 80, "/", ""},
		{"http://127.0.0.1/a?b=1", 80, "/a?b=1", ""},
		{"http://[::1]:9/x", 9, "/x", ""},
		{"https://localhost/", 0, "", "http://"},
		{"http://example.com/", 0, "", "names localhost"},
		{"http://localhost:0/", 0, "", "port"},
	} {
		port, path, err := localURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || port != tc.port || path != tc.path {
			t.Errorf("%s: %d %q %v, want %d %q", tc.in, port, path, err, tc.port, tc.path)
		}
	}
}

// TestLayoutShared: a port a service with replicas publishes (fixed or
// free) is one host port of the service's, served by the holder and the
// Balancer (in a namespace or not); each replica's own port for it is a
// free one on 127.0.0.1, unpublished, for its health probe.
func TestLayoutShared(t *testing.T) {
	for _, tc := range []struct {
		ports string
		want  string // the shared host address
	}{
		{`["18081:8080"]`, "127.0.0.1:18081"},
		{`["0.0.0.0:18081:8080"]`, "0.0.0.0:18081"},
		{`["8080"]`, "127.0.0.1:40001"}, // a free one, once
	} {
		t.Run(tc.ports, func(t *testing.T) {
			f := parse(t, strings.Replace(taxi, "    expose: [\"8080\"]\n    depends_on: [redis]", "    ports: "+tc.ports+"\n    depends_on: [redis]", 1))
			next := 40000
			n, err := f.layout(UserMode, "", func() (int, error) { next++; return next, nil })
			if err != nil {
				t.Fatal(err)
			}
			if len(n.Shared) != 1 || n.Shared[0].Service != "dispatcher" || n.Shared[0].Port != 8080 || n.Shared[0].Addr() != tc.want || !n.Shared[0].Published {
				t.Fatalf("shared %+v", n.Shared)
			}
			for _, r := range f.replicasOf("dispatcher") {
				if e := n.endpointsOf(r.Instance); len(e) != 1 || e[0].Published || e[0].HostIP != "127.0.0.1" || e[0].Addr() == tc.want {
					t.Errorf("%s: endpoints %+v", r.Instance, e)
				}
			}
			var line []string
			for _, e := range n.published() {
				line = append(line, e.Service+"/"+e.Instance+" "+e.Addr())
			}
			if w := []string{"dispatcher/ " + tc.want, "trip/taxi-trip 127.0.0.1:18080"}; !reflect.DeepEqual(line, w) {
				t.Errorf("published %v, want %v", line, w)
			}
			n.Namespace = true
			shared := HostPort{Service: "dispatcher", Listen: tc.want, Port: 8080}
			if s := f.netSpec(n, false); len(s.Host) != 6 || s.Host[0] != shared || s.HostOnly {
				t.Errorf("namespace: host listeners %+v", s.Host)
			}
			if s := f.netSpec(n, true); !reflect.DeepEqual(s, NetSpec{HostOnly: true, Host: []HostPort{shared}}) {
				t.Errorf("no namespace: %+v", s)
			}
		})
	}
}
