//go:build linux

package netlink

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"
)

// Iface is the network a container engine gives a container's namespace
// (a veth, from Docker, Podman or a CNI plugin): what a VM takes over
// when its tap is mirrored to it (Links.Mirror).
type Iface struct {
	Link                 // its name, index, MAC and MTU
	Addr    netip.Prefix // its IPv4 address and prefix length
	Gateway netip.Addr   // the default route's next hop; not valid when there is no default route through a gateway
	// Routes are its other IPv4 routes in the main table, as they stand:
	// neither the default route through Gateway nor those the kernel
	// made for Addr (the subnet's, protocol kernel), which a guest given
	// Addr makes itself. Kubernetes CNIs that give a pod a /32 put the
	// gateway on a route of its own here (169.254.1.1 scope link), to be
	// added before the default route.
	Routes []Route
}

// Veth reads the network the engine left in the connection's network
// namespace: the one link other than the loopback that is up and has an
// IPv4 address, with that address, the default gateway and its other
// routes. No such link, or more than one, or one with more than one IPv4
// address, is an error naming what was found: a VM takes one address.
// IPv6 addresses are not read.
func (c *Conn) Veth() (Iface, error) {
	links, err := c.Links()
	if err != nil {
		return Iface{}, err
	}
	addrs, err := c.Addrs()
	if err != nil {
		return Iface{}, err
	}
	routes, err := c.Routes()
	if err != nil {
		return Iface{}, err
	}
	return pickVeth(links, addrs, routes)
}

// pickVeth is Veth on what the namespace holds.
func pickVeth(links []Link, addrs []Addr, routes []Route) (Iface, error) {
	var found []Iface
	var down []string
	for _, l := range links {
		if l.Loopback() {
			continue
		}
		var mine []netip.Prefix
		for _, a := range addrs {
			if a.Index == l.Index && a.Prefix.Addr().Is4() {
				mine = append(mine, a.Prefix)
			}
		}
		if len(mine) == 0 {
			continue
		}
		if !l.Up() {
			down = append(down, l.Name)
			continue
		}
		if len(mine) > 1 {
			return Iface{}, fmt.Errorf("interface %s has %d IPv4 addresses (%s): a VM takes one", l.Name, len(mine), joinPrefixes(mine))
		}
		found = append(found, Iface{Link: l, Addr: mine[0]})
	}
	switch len(found) {
	case 0:
		if len(down) > 0 {
			return Iface{}, fmt.Errorf("no interface is up with an IPv4 address in this network namespace (down: %s)", strings.Join(down, ", "))
		}
		return Iface{}, fmt.Errorf("no interface other than the loopback has an IPv4 address in this network namespace")
	case 1:
	default:
		names := make([]string, len(found))
		for i, f := range found {
			names[i] = f.Name + " " + f.Addr.String()
		}
		return Iface{}, fmt.Errorf("%d interfaces are up with an IPv4 address in this network namespace (%s): a VM takes one", len(found), strings.Join(names, ", "))
	}
	v := found[0]
	def := -1
	var mine []Route
	for _, r := range routes {
		if r.Index != v.Index || r.Table != unix.RT_TABLE_MAIN || r.Type != unix.RTN_UNICAST || !r.Dst.Addr().Is4() {
			continue
		}
		if r.Protocol == unix.RTPROT_KERNEL && r.Src == v.Addr.Addr() {
			continue
		}
		if r.Default() && r.Gateway.IsValid() && (def < 0 || r.Metric < mine[def].Metric) {
			def = len(mine)
		}
		mine = append(mine, r)
	}
	if def >= 0 {
		v.Gateway = mine[def].Gateway
		mine = append(mine[:def], mine[def+1:]...)
	}
	v.Routes = mine
	return v, nil
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
