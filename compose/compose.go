// Package compose describes several unikernels that talk to each other:
// the compose file, and the addresses, names and port forwards that let
// every service reach every other by name, with or without root.
package compose

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/opsdev/ops/lepton"
	"gopkg.in/yaml.v3"
)

// File is compose.yaml.
type File struct {
	Name     string              `yaml:"name"`
	Services map[string]*Service `yaml:"services"`
	Dir      string              `yaml:"-"` // the folder relative paths start from
}

// Service is one unikernel: an ELF or a package, with arguments,
// environment, the ports it listens on, and ports published to the host.
type Service struct {
	Program string            `yaml:"program"`
	Package string            `yaml:"package"`
	Local   bool              `yaml:"local"` // Package is a local package
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Expose  []int             `yaml:"expose"` // ports other services reach
	Ports   []string          `yaml:"ports"`  // published on the host, as -p
	Config  string            `yaml:"config"` // a config.json for the service
	Memory  string            `yaml:"memory"`
	Guest   string            `yaml:"guest"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// Load reads and checks a compose file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f.Dir = filepath.Dir(abs)
	if f.Name == "" {
		f.Name = sanitize(filepath.Base(f.Dir))
	}
	return f, nil
}

// Parse decodes a compose document strictly: unknown keys are errors.
func Parse(b []byte) (*File, error) {
	var f File
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&f); err != nil {
		return nil, err
	}
	if len(f.Services) == 0 {
		return nil, fmt.Errorf("no services")
	}
	if f.Name != "" && !nameRE.MatchString(f.Name) {
		return nil, fmt.Errorf("name %q: use lower-case letters, digits and dashes", f.Name)
	}
	for name, s := range f.Services {
		if !nameRE.MatchString(name) {
			return nil, fmt.Errorf("service %q: names are lower-case letters, digits and dashes (they become host names)", name)
		}
		if s == nil {
			return nil, fmt.Errorf("service %s: empty", name)
		}
		if (s.Program == "") == (s.Package == "") {
			return nil, fmt.Errorf("service %s: give either program or package", name)
		}
		for _, p := range s.Expose {
			if p < 1 || p > 65535 {
				return nil, fmt.Errorf("service %s: expose %d is not a port", name, p)
			}
		}
		if err := lepton.CheckGuestName(s.Guest); err != nil {
			return nil, fmt.Errorf("service %s: guest: %w", name, err)
		}
	}
	return &f, nil
}

func sanitize(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 20 {
		out = out[:20]
	}
	if out == "" {
		out = "ops"
	}
	return out
}

// Names are the services in a stable order.
func (f *File) Names() []string {
	var out []string
	for n := range f.Services {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Mode is how the services are networked.
type Mode int

// Networking modes.
const (
	// UserMode: each guest on QEMU user-mode networking; other services are
	// reached through per-connection forwards to their host-loopback ports.
	// Needs no root.
	UserMode Mode = iota
	// Bridged: one private bridge for the project, one tap and one address
	// per service. Needs root.
	Bridged
)

// Endpoint is where a service's exposed port is reachable on the host.
type Endpoint struct {
	Service  string
	Port     int // in the guest
	HostPort int // on 127.0.0.1
}

// Net is the network layout of a project.
type Net struct {
	Mode      Mode
	Addr      map[string]string // service -> the address others use for it
	Endpoints []Endpoint        // user mode: every exposed port on the host
	Subnet    *net.IPNet        // bridged
	Gateway   string            // bridged: the bridge's address
}

// UserSubnetBase is where user-mode service addresses start: inside QEMU's
// 10.0.2.0/24, clear of its gateway (.2), DNS (.3) and guest (.15).
const UserSubnetBase = 100

// Layout assigns addresses and host ports. freePort returns a free TCP
// port on 127.0.0.1 (injected for tests).
func (f *File) Layout(mode Mode, subnet string, freePort func() (int, error)) (*Net, error) {
	n := &Net{Mode: mode, Addr: map[string]string{}}
	names := f.Names()
	switch mode {
	case UserMode:
		if len(names) > 100 {
			return nil, fmt.Errorf("at most 100 services")
		}
		for i, name := range names {
			n.Addr[name] = "10.0.2." + strconv.Itoa(UserSubnetBase+i)
		}
	case Bridged:
		_, ipn, err := net.ParseCIDR(subnet)
		if err != nil || ipn.IP.To4() == nil {
			return nil, fmt.Errorf("subnet %q is not an IPv4 CIDR", subnet)
		}
		ones, _ := ipn.Mask.Size()
		if ones > 24 || len(names)+10 > 250 {
			return nil, fmt.Errorf("subnet %s is too small", subnet)
		}
		n.Subnet = ipn
		base := ipn.IP.To4()
		n.Gateway = net.IPv4(base[0], base[1], base[2], base[3]+1).String()
		for i, name := range names {
			n.Addr[name] = net.IPv4(base[0], base[1], base[2], base[3]+byte(10+i)).String()
		}
	}
	// Host ports for every exposed port: the published one when the user
	// published it, else a free one.
	for _, name := range names {
		s := f.Services[name]
		published := map[int]int{}
		for _, spec := range s.Ports {
			host, guest, err := splitPublish(spec)
			if err != nil {
				return nil, fmt.Errorf("service %s: %w", name, err)
			}
			published[guest] = host
		}
		seen := map[int]bool{}
		for _, p := range append(append([]int(nil), s.Expose...), keys(published)...) {
			if seen[p] {
				continue
			}
			seen[p] = true
			hp, ok := published[p]
			if !ok {
				var err error
				if hp, err = freePort(); err != nil {
					return nil, err
				}
			}
			n.Endpoints = append(n.Endpoints, Endpoint{Service: name, Port: p, HostPort: hp})
		}
	}
	return n, nil
}

func keys(m map[int]int) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// splitPublish reads "HOST:GUEST" or "PORT".
func splitPublish(spec string) (int, int, error) {
	h, g, ok := strings.Cut(spec, ":")
	if !ok {
		g = h
	}
	hp, err1 := strconv.Atoi(h)
	gp, err2 := strconv.Atoi(g)
	if err1 != nil || err2 != nil || hp < 1 || hp > 65535 || gp < 1 || gp > 65535 {
		return 0, 0, fmt.Errorf("ports %q: use PORT or HOST:GUEST", spec)
	}
	return hp, gp, nil
}

// Hosts is the /etc/hosts written into service self's image: every
// service's name at its address, self at its own.
func (n *Net) Hosts(self, selfAddr string) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	var names []string
	for name := range n.Addr {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		addr := n.Addr[name]
		if name == self {
			addr = selfAddr
		}
		fmt.Fprintf(&b, "%s\t%s\n", addr, name)
	}
	return []byte(b.String())
}

// Published is a service's endpoints that the user published.
func (f *File) Published(n *Net, name string) []Endpoint {
	var out []Endpoint
	for _, spec := range f.Services[name].Ports {
		host, guest, err := splitPublish(spec)
		if err == nil {
			out = append(out, Endpoint{Service: name, Port: guest, HostPort: host})
		}
	}
	return out
}

// EndpointsOf lists one service's endpoints.
func (n *Net) EndpointsOf(name string) []Endpoint {
	var out []Endpoint
	for _, e := range n.Endpoints {
		if e.Service == name {
			out = append(out, e)
		}
	}
	return out
}
