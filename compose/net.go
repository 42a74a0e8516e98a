package compose

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Mode is how the services are networked.
type Mode int

// Networking modes.
const (
	// UserMode: each guest on user-mode networking (passt), the project's
	// guests in a network namespace of its own where each service has its
	// address (or, without one, QEMU's with per-connection forwards to
	// the host-loopback ports). Needs no root.
	UserMode Mode = iota
	// Bridged: one private bridge for the project, one tap and one address
	// per service. Needs root.
	Bridged
)

// Replica is one VM of a service.
type Replica struct {
	Service  string
	Index    int    // 1, 2, ... for a service with replicas; 0 for a single one
	Instance string // <project>-<service>, or <project>-<service>-<index>
	Hostname string // the guest's own host name
}

// replicasOf lists a service's VMs.
func (f *File) replicasOf(name string) []Replica {
	s := f.Services[name]
	if s.Replicas <= 1 {
		h := s.Hostname
		if h == "" {
			h = name
		}
		return []Replica{{Service: name, Instance: InstanceName(f.Name, name), Hostname: h}}
	}
	var out []Replica
	for i := 1; i <= s.Replicas; i++ {
		h := s.Hostname
		if h == "" {
			h = name
		}
		out = append(out, Replica{Service: name, Index: i, Instance: fmt.Sprintf("%s-%d", InstanceName(f.Name, name), i), Hostname: fmt.Sprintf("%s-%d", h, i)})
	}
	return out
}

// InstanceName is the instance a project's service runs as with up -d
// (with -N for each of several replicas).
func InstanceName(project, service string) string { return project + "-" + service }

// Endpoint is where a replica's port is reachable on the host, or (in
// Net.Shared) where a service's published port is.
type Endpoint struct {
	Service   string
	Instance  string // "" in Net.Shared
	Port      int    // in the guest
	HostIP    string
	HostPort  int
	Published bool // the user published it (ports:); else only the others use it
}

// Addr is the endpoint's host address.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.HostIP, strconv.Itoa(e.HostPort)) }

// Net is the network layout of a project.
type Net struct {
	Mode      Mode
	Addr      map[string]string // service -> the address others use for it
	Endpoints []Endpoint        // every replica's ports on the host
	// Shared are the published ports of services with several replicas:
	// one host port each, whose connections the project's Balancer hands
	// to the replicas (each replica's own port, in Endpoints, is a free
	// one on 127.0.0.1, which its health probe uses).
	Shared  []Endpoint
	Subnet  *net.IPNet // bridged
	Gateway string     // bridged: the bridge's address
	// ReplicaAddr is each replica's own address on the bridge (bridged)
	// or in the project's network namespace (user mode); a service with
	// one replica is at the service's address.
	ReplicaAddr map[string]string
	// Namespace: the user-mode services are in a network namespace of the
	// project's own (nsnet.go), not on QEMU's guestfwd.
	Namespace bool
}

// UserSubnetBase is where user-mode service addresses start: inside QEMU's
// 10.0.2.0/24, clear of its gateway (.2), DNS (.3) and guest (.15).
const UserSubnetBase = 100

// ReplicaSubnet is where the addresses of replicas start in a project's
// network namespace (UserMode): only ops's balancer connects to them.
const ReplicaSubnet = "10.0.3."

// layout assigns addresses and host ports. freePort returns a free TCP
// port on 127.0.0.1 (injected for tests).
func (f *File) layout(mode Mode, subnet string, freePort func() (int, error)) (*Net, error) {
	n := &Net{Mode: mode, Addr: map[string]string{}}
	names := f.Names()
	switch mode {
	case UserMode:
		if len(names) > 100 {
			return nil, errors.New("at most 100 services")
		}
		// In the project's network namespace, each replica of a service
		// with several has an address of its own there, where its passt
		// listens; the service's address is then ops's balancer's.
		n.ReplicaAddr = map[string]string{}
		next := 1
		for i, name := range names {
			n.Addr[name] = "10.0.2." + strconv.Itoa(UserSubnetBase+i)
			for _, r := range f.replicasOf(name) {
				if r.Index == 0 {
					n.ReplicaAddr[r.Instance] = n.Addr[name]
					continue
				}
				if next > 254 {
					return nil, errors.New("at most 254 replicas in all")
				}
				n.ReplicaAddr[r.Instance] = ReplicaSubnet + strconv.Itoa(next)
				next++
			}
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
		n.ReplicaAddr = map[string]string{}
		next := 10
		addr := func() (string, error) {
			if next > 250 {
				return "", fmt.Errorf("subnet %s is too small for every replica", subnet)
			}
			next++
			return net.IPv4(base[0], base[1], base[2], base[3]+byte(next-1)).String(), nil
		}
		for _, name := range names {
			// A service with replicas has an address of its own, on the
			// host, where ops hands each connection to a replica.
			var err error
			if n.Addr[name], err = addr(); err != nil {
				return nil, err
			}
			for _, r := range f.replicasOf(name) {
				if r.Index == 0 {
					n.ReplicaAddr[r.Instance] = n.Addr[name]
				} else if n.ReplicaAddr[r.Instance], err = addr(); err != nil {
					return nil, err
				}
			}
		}
	}
	// Host ports for every replica's ports: the published one when the
	// user published it (on a service with several replicas, the
	// service's), else a free one.
	for _, name := range names {
		s := f.Services[name]
		reps := f.replicasOf(name)
		for _, p := range s.Ports {
			if len(reps) < 2 {
				continue
			}
			hp, err := hostPort(p, freePort)
			if err != nil {
				return nil, err
			}
			n.Shared = append(n.Shared, Endpoint{Service: name, Port: p.Guest, HostIP: p.HostIP, HostPort: hp, Published: true})
		}
		for _, r := range reps {
			seen := map[int]bool{}
			for _, p := range s.Ports {
				seen[p.Guest] = true
				if len(reps) > 1 {
					p = Publish{HostIP: "127.0.0.1", Guest: p.Guest}
				}
				hp, err := hostPort(p, freePort)
				if err != nil {
					return nil, err
				}
				n.Endpoints = append(n.Endpoints, Endpoint{Service: name, Instance: r.Instance, Port: p.Guest, HostIP: p.HostIP, HostPort: hp, Published: len(reps) == 1})
			}
			expose := append([]int(nil), s.Expose...)
			sort.Ints(expose)
			for _, p := range expose {
				if seen[p] {
					continue
				}
				seen[p] = true
				hp, err := freePort()
				if err != nil {
					return nil, err
				}
				n.Endpoints = append(n.Endpoints, Endpoint{Service: name, Instance: r.Instance, Port: p, HostIP: "127.0.0.1", HostPort: hp})
			}
		}
	}
	return n, nil
}

// hostPort is a published port's host port: the one given, else a free one.
func hostPort(p Publish, freePort func() (int, error)) (int, error) {
	if p.Host != 0 {
		return p.Host, nil
	}
	return freePort()
}

// hosts is the /etc/hosts written into a replica's image: every
// service's name at its address, its own service name and host name at
// its own address.
func (n *Net) hosts(r Replica, selfAddr string) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	for _, name := range slices.Sorted(maps.Keys(n.Addr)) {
		addr := n.Addr[name]
		if name == r.Service {
			addr = selfAddr
		}
		fmt.Fprintf(&b, "%s\t%s\n", addr, name)
	}
	if r.Hostname != r.Service {
		fmt.Fprintf(&b, "%s\t%s\n", selfAddr, r.Hostname)
	}
	return []byte(b.String())
}

// endpointsOf lists one replica's endpoints.
func (n *Net) endpointsOf(instance string) []Endpoint {
	var out []Endpoint
	for _, e := range n.Endpoints {
		if e.Instance == instance {
			out = append(out, e)
		}
	}
	return out
}

// published lists the published endpoints of every replica and every
// service's shared ones, for the line up prints.
func (n *Net) published() []Endpoint {
	var out []Endpoint
	for _, e := range slices.Concat(n.Shared, n.Endpoints) {
		if e.Published {
			out = append(out, e)
		}
	}
	return out
}
