package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/tree"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/volume"
	"gopkg.in/yaml.v3"
)

// LoadOptions say which compose files to read, as docker compose takes
// them: -f (several, merged in order; none: compose.yaml, compose.yml,
// docker-compose.yml ... searched from the working folder up), --profile,
// --project-name, and the .env of the project folder.
type LoadOptions struct {
	Files    []string
	Profiles []string
	Name     string
	WorkDir  string   // default: the current folder
	Env      []string // KEY=VALUE for interpolation (the process environment, from cmd/)
}

// Load reads a project through compose-go (interpolation, .env, env_file,
// profiles, extends, several files) and maps it to ops's services.
func Load(ctx context.Context, o LoadOptions) (*File, error) {
	var warnings []string
	opts, err := cli.NewProjectOptions(o.Files,
		cli.WithWorkingDirectory(o.WorkDir),
		cli.WithEnv(o.Env),
		cli.WithDefaultConfigPath,
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithProfiles(o.Profiles),
		cli.WithName(o.Name),
		cli.WithLoadOptions(noImageCheck),
	)
	if err != nil {
		return nil, err
	}
	if len(opts.ConfigPaths) == 0 {
		return nil, errors.New("no compose file here: give -f FILE, or write compose.yaml (compose.yml and docker-compose.yml are read too)")
	}
	for _, p := range opts.ConfigPaths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if err := oldFormat(p, b); err != nil {
			return nil, err
		}
		warnings = append(warnings, unsupported(b)...)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, oneLine(err)
	}
	f, err := fromProject(p, warnings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.ConfigPaths[0], err)
	}
	return f, nil
}

// Parse reads one compose document (tests and fuzzing): no .env, no
// process environment, relative paths from dir.
func Parse(b []byte, dir string) (*File, error) {
	if err := oldFormat("compose.yaml", b); err != nil {
		return nil, err
	}
	warnings := unsupported(b)
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml"), Content: b}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("project", false) }, noImageCheck)
	if err != nil {
		return nil, oneLine(err)
	}
	return fromProject(p, warnings)
}

func oneLine(err error) error {
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}

// oldFormat refuses ops's own compose format of before (program, args,
// env at the service's top level) with how to convert it.
func oldFormat(path string, b []byte) error {
	var doc struct {
		Services map[string]map[string]any `yaml:"services"`
	}
	if yaml.Unmarshal(b, &doc) != nil {
		return nil // compose-go says what is wrong
	}
	for _, name := range slices.Sorted(maps.Keys(doc.Services)) {
		for _, k := range []string{"program", "package", "local", "args", "env", "memory", "guest", "config"} {
			if _, ok := doc.Services[name][k]; ok {
				return fmt.Errorf("%s: service %s: %q is ops's old compose format; move program, package, local, guest and config under x-ops:, args to command:, env to environment:, memory to deploy.resources.limits.memory (README: \"ops compose\")", path, name, k)
			}
		}
	}
	return nil
}

// supportedPaths are the keys ops maps; every other key of a service (or
// of the file) is a warning line, never a silent drop.
func supportedPaths() []tree.Path {
	var out []tree.Path
	for _, p := range []string{"name", "version", "services", "volumes", "volumes.*", "volumes.*.name", "volumes.*.external"} {
		out = append(out, tree.NewPath(strings.Split(p, ".")...))
	}
	svc := []string{"image", "command", "entrypoint", "environment", "env_file", "ports", "expose", "working_dir",
		"depends_on", "restart", "volumes", "deploy", "deploy.replicas", "deploy.resources", "deploy.resources.limits",
		"deploy.resources.limits.memory", "deploy.resources.limits.cpus", "hostname", "healthcheck", "profiles", "extends",
		"container_name", "platform"}
	for _, k := range svc {
		out = append(out, tree.NewPath(append([]string{"services", tree.PathMatchAll}, strings.Split(k, ".")...)...))
	}
	// Whole subtrees ops reads itself.
	for _, k := range []string{"ports", "depends_on", "healthcheck", "volumes", "env_file", "extends", "environment", "command", "entrypoint", "expose", "profiles"} {
		out = append(out, tree.NewPath("services", tree.PathMatchAll, k, tree.PathMatchAll),
			tree.NewPath("services", tree.PathMatchAll, k, tree.PathMatchList),
			tree.NewPath("services", tree.PathMatchAll, k, tree.PathMatchAll, tree.PathMatchAll),
			tree.NewPath("services", tree.PathMatchAll, k, tree.PathMatchList, tree.PathMatchAll),
			tree.NewPath("services", tree.PathMatchAll, k, tree.PathMatchList, tree.PathMatchAll, tree.PathMatchAll))
	}
	return out
}

// why says why a key is ignored, for the keys people use most.
func why(key string) string {
	switch key {
	case "build":
		return "ops does not build container images; give image: or x-ops: {program: ...}"
	case "privileged", "cap_add", "cap_drop", "security_opt", "user", "userns_mode", "group_add":
		return "a unikernel runs one program with no users or capabilities"
	case "devices", "device_cgroup_rules", "gpus":
		return "a unikernel VM gets no host devices"
	case "networks", "network_mode", "links", "dns", "extra_hosts", "mac_address":
		return "a project's services share one network and reach each other by service name"
	case "logging", "log_driver", "log_opt":
		return "console logs are kept by ops (ops compose logs)"
	case "tmpfs", "shm_size", "ulimits", "sysctls", "pid", "ipc", "init", "stop_signal", "read_only":
		return "there is no container runtime in a unikernel"
	}
	return "it has no meaning for a unikernel VM"
}

// noImageCheck lets a service run a program or package (x-ops) where
// compose-go's consistency check wants an image or a build; ops checks
// the references it skips (depends_on, volumes) itself.
func noImageCheck(o *loader.Options) { o.SkipConsistencyCheck = true }

// unsupported is one warning line per key of a compose document that ops
// does not act on (an allowlist: supportedPaths), outermost first and in
// name order; extensions (x-...) are the user's own. A document that is
// not YAML gives none here: compose-go says what is wrong with it.
func unsupported(content []byte) []string {
	var doc any
	if yaml.Unmarshal(content, &doc) != nil {
		return nil
	}
	// A key is read when its path, or a path under it, is supported.
	var patterns []tree.Path
	for _, p := range supportedPaths() {
		parts := p.Parts()
		for i := 1; i <= len(parts); i++ {
			patterns = append(patterns, tree.NewPath(parts[:i]...))
		}
	}
	var out []string
	var walk func(p tree.Path, v any)
	walk = func(p tree.Path, v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				if strings.HasPrefix(k, "x-") {
					continue
				}
				next := p.Next(k)
				if !matchesAny(next, patterns) {
					out = append(out, fmt.Sprintf("%s: ignored: %s", next, why(k)))
					continue
				}
				walk(next, v[k])
			}
		case []any:
			for _, item := range v {
				if next := p.Next(tree.PathMatchList); matchesAny(next, patterns) {
					walk(next, item)
				}
			}
		}
	}
	walk("", doc)
	return out
}

func matchesAny(p tree.Path, patterns []tree.Path) bool {
	for _, pat := range patterns {
		if p.Matches(pat) {
			return true
		}
	}
	return false
}

// xOps is a service's x-ops extension: ops's own keys.
type xOps struct {
	Program     string `json:"program"`
	Package     string `json:"package"`
	Local       bool   `json:"local"`
	Guest       string `json:"guest"`
	Config      string `json:"config"`
	Healthcheck *struct {
		HTTP string `json:"http"` // URL, http://localhost:PORT/PATH
		TCP  int    `json:"tcp"`  // port
	} `json:"healthcheck"`
}

func decodeXOps(v any) (xOps, error) {
	var x xOps
	if v == nil {
		return x, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return x, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&x); err != nil {
		return x, fmt.Errorf("x-ops: %v (keys: program, package, local, guest, config, healthcheck: {http: URL | tcp: PORT})", err)
	}
	return x, nil
}

// fromProject maps compose-go's project to ops's services.
func fromProject(p *types.Project, warnings []string) (*File, error) {
	if len(p.Services) == 0 {
		return nil, errors.New("no services")
	}
	name := sanitize(p.Name)
	f := &File{Name: name, Dir: p.WorkingDir, Services: map[string]*Service{}, Warnings: warnings}
	vols := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		sc := p.Services[name]
		s, err := fromService(p, sc, vols)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", sc.Name, err)
		}
		f.Services[sc.Name] = s
	}
	f.Volumes = slices.Sorted(maps.Keys(vols))
	for _, n := range f.Names() {
		for _, dep := range slices.Sorted(maps.Keys(f.Services[n].DependsOn)) {
			cond := f.Services[n].DependsOn[dep]
			if d, ok := f.Services[dep]; ok && cond == Healthy && d.Health == nil {
				return nil, fmt.Errorf("service %s: depends_on %s: condition service_healthy, but %s has no healthcheck", n, dep, dep)
			}
		}
	}
	for _, v := range f.Volumes {
		if n := f.volumeName(v); !volume.ValidName(n) {
			return nil, fmt.Errorf("volume %s: the ops volume %s would be longer than 31 characters or hold other characters than letters, digits, dots, dashes and underscores", v, n)
		}
	}
	if _, err := f.order(); err != nil {
		return nil, err
	}
	if err := f.checkPorts(); err != nil {
		return nil, err
	}
	return f, nil
}

func fromService(p *types.Project, sc types.ServiceConfig, vols map[string]bool) (*Service, error) {
	if !nameRE().MatchString(sc.Name) {
		return nil, errors.New("service names are lower-case letters, digits and dashes, at most 32 (they become host names)")
	}
	x, err := decodeXOps(sc.Extensions["x-ops"])
	if err != nil {
		return nil, err
	}
	s := &Service{Name: sc.Name, Program: x.Program, Package: x.Package, Local: x.Local, Guest: x.Guest, Config: x.Config,
		Image: sc.Image, WorkingDir: sc.WorkingDir, Hostname: sc.Hostname, Restart: sc.Restart, Replicas: 1, Env: map[string]string{}}
	n := 0
	for _, v := range []string{s.Program, s.Package, s.Image} {
		if v != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, errors.New("give image: (an OCI reference or a docker save tarball), or x-ops: {program: ./ELF} or x-ops: {package: NAME}")
	case s.Program != "" && s.Package != "":
		return nil, errors.New("x-ops: give program or package, not both")
	case s.Program != "" || s.Package != "":
		// x-ops wins over image: one file serves docker compose and ops.
		s.Image = ""
	}
	if err := lepton.CheckGuestName(s.Guest); err != nil {
		return nil, fmt.Errorf("x-ops: guest: %w", err)
	}
	if s.Arch, err = platformArch(sc.Platform); err != nil {
		return nil, err
	}
	if _, err := instance.ParsePolicy(s.Restart); err != nil {
		return nil, fmt.Errorf("restart: %q: use no, always, on-failure[:N] or unless-stopped", s.Restart)
	}
	if sc.Entrypoint != nil {
		s.Entrypoint = []string(sc.Entrypoint)
	}
	if sc.Command != nil {
		s.Command = []string(sc.Command)
	}
	if s.Entrypoint != nil && sc.Image == "" {
		return nil, errors.New("entrypoint: only an image has one to replace; with x-ops program, put the arguments in command:")
	}
	for k, v := range sc.Environment {
		if v != nil {
			s.Env[k] = *v
		}
	}
	for _, e := range sc.Expose {
		port, err := parsePort(e)
		if err != nil {
			return nil, fmt.Errorf("expose %q: %w", e, err)
		}
		s.Expose = append(s.Expose, port)
	}
	for _, pc := range sc.Ports {
		if pc.Protocol != "" && pc.Protocol != "tcp" {
			return nil, fmt.Errorf("ports: %s/%s: ops compose publishes TCP ports only", pc.Published, pc.Protocol)
		}
		pub := Publish{HostIP: pc.HostIP, Guest: int(pc.Target)}
		if pub.HostIP == "" {
			pub.HostIP = "127.0.0.1"
		}
		if pc.Published == "" {
			pub.Host = 0 // a free port, chosen at up
		} else if pub.Host, err = parsePort(pc.Published); err != nil {
			return nil, fmt.Errorf("ports: published %q: %w", pc.Published, err)
		}
		s.Ports = append(s.Ports, pub)
	}
	if len(sc.DependsOn) > 0 {
		s.DependsOn = map[string]string{}
		for d, dep := range sc.DependsOn {
			if d == sc.Name {
				return nil, fmt.Errorf("depends_on %s: a service cannot depend on itself", d)
			}
			switch dep.Condition {
			case "", Started, Healthy, Completed:
			default:
				return nil, fmt.Errorf("depends_on %s: condition %q: use service_started, service_healthy or service_completed_successfully", d, dep.Condition)
			}
			c := dep.Condition
			if c == "" {
				c = Started
			}
			s.DependsOn[d] = c
		}
	}
	if sc.Deploy != nil {
		if sc.Deploy.Replicas != nil {
			s.Replicas = *sc.Deploy.Replicas
		}
		if l := sc.Deploy.Resources.Limits; l != nil {
			if l.MemoryBytes > 0 {
				s.Memory = strconv.FormatInt(int64(math.Ceil(float64(l.MemoryBytes)/(1<<20))), 10) + "M"
			}
			if l.NanoCPUs > 0 {
				s.CPUs = int(math.Ceil(float64(l.NanoCPUs)))
			}
		}
	}
	if sc.Scale != nil {
		s.Replicas = *sc.Scale
	}
	if s.Replicas < 1 || s.Replicas > 32 {
		return nil, fmt.Errorf("deploy.replicas %d: give 1 to 32", s.Replicas)
	}
	for _, v := range sc.Volumes {
		if v.Type == types.VolumeTypeBind {
			b, err := bindMount(v)
			if err != nil {
				return nil, err
			}
			s.Binds = append(s.Binds, b)
			continue
		}
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			return nil, fmt.Errorf("volumes %s: ops mounts named volumes and host folders or files (%s mounts have no place in a VM)", v.Target, v.Type)
		}
		if s.Replicas > 1 {
			return nil, fmt.Errorf("volumes %s: a volume is mounted by one VM at a time; a service with %d replicas cannot mount it", v.Source, s.Replicas)
		}
		pv, ok := p.Volumes[v.Source]
		if !ok {
			return nil, fmt.Errorf("volumes %s: declare it under the file's top-level volumes:", v.Source)
		}
		if bool(pv.External) {
			return nil, fmt.Errorf("volumes %s: external volumes are not managed by ops compose; mount an ops volume with x-ops config's Mounts", v.Source)
		}
		vols[v.Source] = true
		s.Mounts = append(s.Mounts, VolumeMount{Volume: v.Source, Path: v.Target, ReadOnly: v.ReadOnly})
	}
	if s.Health, err = health(sc.HealthCheck, x); err != nil {
		return nil, err
	}
	if s.Health != nil && !slices.Contains(s.Expose, s.Health.Port) {
		s.Expose = append(s.Expose, s.Health.Port)
	}
	return s, nil
}

// bindMount reads a bind mount: its source (made absolute from the
// project's folder by the loader) must exist, a folder or a regular file.
func bindMount(v types.ServiceVolumeConfig) (BindMount, error) {
	b := BindMount{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
	if !filepath.IsAbs(v.Source) || !path.IsAbs(v.Target) {
		return b, fmt.Errorf("volumes %s:%s: give the host path and an absolute path in the guest", v.Source, v.Target)
	}
	st, err := os.Stat(v.Source)
	switch {
	case err != nil:
		return b, fmt.Errorf("volumes %s: no such folder or file on this host (make it first)", v.Source)
	case st.Mode().IsRegular():
		b.File = true
	case !st.IsDir():
		return b, fmt.Errorf("volumes %s: a folder or a regular file can be bound, not this", v.Source)
	}
	return b, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, errors.New("not a port (1-65535)")
	}
	return p, nil
}

// checkPorts refuses a host port published twice.
func (f *File) checkPorts() error {
	seen := map[string]string{}
	for _, n := range f.Names() {
		s := f.Services[n]
		for _, p := range s.Ports {
			if p.Host == 0 {
				continue
			}
			k := p.HostIP + ":" + strconv.Itoa(p.Host)
			if other, ok := seen[k]; ok {
				return fmt.Errorf("service %s: host port %s is published by %s too; give each a port of its own", n, k, other)
			}
			seen[k] = n
		}
	}
	return nil
}

// Docker's defaults for a healthcheck.
const (
	defaultInterval = 30 * time.Second
	defaultTimeout  = 30 * time.Second
	defaultRetries  = 3
)

// health reads a healthcheck: x-ops's http or tcp, else the test when it
// is a curl/wget of a URL on localhost or an nc -z of a port, which ops
// runs from the host through the service's forward.
func health(hc *types.HealthCheckConfig, x xOps) (*Health, error) {
	if (hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE") && x.Healthcheck == nil {
		return nil, nil
	}
	h := &Health{Interval: defaultInterval, Timeout: defaultTimeout, Retries: defaultRetries}
	var err error
	if x.Healthcheck != nil {
		switch {
		case x.Healthcheck.HTTP != "" && x.Healthcheck.TCP != 0:
			return nil, errors.New("x-ops.healthcheck: give http or tcp, not both")
		case x.Healthcheck.HTTP != "":
			if h.Port, h.Path, err = localURL(x.Healthcheck.HTTP); err != nil {
				return nil, fmt.Errorf("x-ops.healthcheck.http %q: %w", x.Healthcheck.HTTP, err)
			}
		case x.Healthcheck.TCP > 0 && x.Healthcheck.TCP < 65536:
			h.Port = x.Healthcheck.TCP
		default:
			return nil, errors.New("x-ops.healthcheck: give http: http://localhost:PORT/PATH or tcp: PORT")
		}
	} else if err = probeOf(hc.Test, h); err != nil {
		return nil, fmt.Errorf("healthcheck test %q: %w", strings.Join(hc.Test, " "), err)
	}
	if hc != nil {
		if hc.Interval != nil {
			h.Interval = time.Duration(*hc.Interval)
		}
		if hc.Timeout != nil {
			h.Timeout = time.Duration(*hc.Timeout)
		}
		if hc.StartPeriod != nil {
			h.StartPeriod = time.Duration(*hc.StartPeriod)
		}
		if hc.StartInterval != nil {
			h.StartInterval = time.Duration(*hc.StartInterval)
		}
		if hc.Retries != nil {
			h.Retries = int(*hc.Retries)
		}
	}
	if h.Interval <= 0 || h.Timeout <= 0 || h.Retries < 1 {
		return nil, errors.New("healthcheck: interval and timeout must be positive and retries at least 1")
	}
	return h, nil
}

const probeHint = "a unikernel has no shell to run it; ops understands curl or wget of http://localhost:PORT/PATH, nc -z localhost PORT and redis-cli ping, or give x-ops: {healthcheck: {http: URL}} or {healthcheck: {tcp: PORT}}"

// probeOf reads a healthcheck test into h: ["CMD", "curl", "-f", URL],
// ["CMD-SHELL", "curl -f URL || exit 1"], wget, nc -z HOST PORT, or
// redis-cli [-h localhost] [-p PORT] ping.
func probeOf(test []string, h *Health) (err error) {
	h.Port, h.Path, h.Send, h.Expect, err = probeArgs(test)
	return err
}

func probeArgs(test []string) (port int, path, send, expect string, err error) {
	port, path, err = probeURL(test)
	if errors.Is(err, errRedis) {
		port, err = redisPing(test)
		return port, "", "PING\r\n", "+PONG", err
	}
	return port, path, "", "", err
}

var errRedis = errors.New("redis-cli")

// redisPing reads redis-cli [-h localhost] [-p PORT] ping.
func redisPing(test []string) (int, error) {
	argv := test[1:]
	if test[0] == "CMD-SHELL" {
		cmd, _, _ := strings.Cut(test[1], "||")
		argv = strings.Fields(cmd)
	}
	port := 6379
	ping := false
	for i := 1; i < len(argv); i++ {
		switch a := argv[i]; {
		case a == "-h" && i+1 < len(argv) && isLocal(argv[i+1]):
			i++
		case a == "-p" && i+1 < len(argv):
			p, err := parsePort(argv[i+1])
			if err != nil {
				return 0, fmt.Errorf("-p %s: %w", argv[i+1], err)
			}
			port = p
			i++
		case strings.EqualFold(a, "ping"):
			ping = true
		default:
			return 0, fmt.Errorf("redis-cli %s: only redis-cli [-h localhost] [-p PORT] ping is understood; %s", a, probeHint)
		}
	}
	if !ping {
		return 0, errors.New("redis-cli without ping; " + probeHint)
	}
	return port, nil
}

func probeURL(test []string) (port int, path string, err error) {
	var argv []string
	switch test[0] {
	case "CMD":
		argv = test[1:]
	case "CMD-SHELL":
		if len(test) != 2 {
			return 0, "", errors.New("CMD-SHELL takes one command line")
		}
		cmd, _, _ := strings.Cut(test[1], "||")
		cmd, _, _ = strings.Cut(cmd, "&&")
		argv = strings.Fields(cmd)
	default:
		return 0, "", errors.New("the test starts with CMD, CMD-SHELL or NONE")
	}
	if len(argv) == 0 {
		return 0, "", errors.New("empty command; " + probeHint)
	}
	switch filepath.Base(argv[0]) {
	case "redis-cli":
		return 0, "", errRedis
	case "curl", "wget":
		for _, a := range argv[1:] {
			if strings.HasPrefix(a, "http://") {
				port, path, err := localURL(a)
				if err != nil {
					return 0, "", fmt.Errorf("%s: %w", a, err)
				}
				return port, path, nil
			}
		}
		return 0, "", errors.New("no http:// URL in the command; " + probeHint)
	case "nc", "netcat":
		z := false
		var rest []string
		for _, a := range argv[1:] {
			switch {
			case strings.HasPrefix(a, "-"):
				z = z || strings.Contains(a, "z")
			default:
				rest = append(rest, a)
			}
		}
		if z && len(rest) == 2 && isLocal(rest[0]) {
			if port, err := parsePort(rest[1]); err == nil {
				return port, "", nil
			}
		}
		return 0, "", errors.New("only nc -z localhost PORT is understood; " + probeHint)
	}
	return 0, "", errors.New(probeHint)
}

func isLocal(host string) bool {
	switch host {
	case "localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]":
		return true
	}
	return false
}

// localURL reads http://localhost[:PORT]/PATH: the port (80 when none)
// and the request's path with its query.
func localURL(raw string) (int, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return 0, "", errors.New("give an http:// URL")
	}
	if !isLocal(u.Hostname()) {
		return 0, "", fmt.Errorf("the host is %s; ops probes the service's own port, so the URL names localhost", u.Hostname())
	}
	port := 80
	if ps := u.Port(); ps != "" {
		if port, err = parsePort(ps); err != nil {
			return 0, "", fmt.Errorf("port %q: %w", ps, err)
		}
	}
	return port, u.RequestURI(), nil
}

// platformArch is the architecture a service's platform: names (os/arch
// or os/arch/variant, as docker compose reads it): "" for none; linux
// only, and an architecture ops builds for (amd64, arm64, or their
// kernel names).
func platformArch(platform string) (string, error) {
	if platform == "" {
		return "", nil
	}
	goos, rest, ok := strings.Cut(platform, "/")
	name, _, _ := strings.Cut(rest, "/")
	if !ok || goos != "linux" || name == "" {
		return "", fmt.Errorf("platform %q: ops runs linux/amd64 and linux/arm64 programs", platform)
	}
	a, err := arch.Parse(name)
	if err != nil {
		return "", fmt.Errorf("platform %q: ops runs linux/amd64 and linux/arm64 programs", platform)
	}
	return string(a), nil
}
