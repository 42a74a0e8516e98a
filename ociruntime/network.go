package ociruntime

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/dnsrelay"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/netlink"
	"github.com/opsdev/ops/qemu"
)

// Network is how the container's VM is connected: chosen at create from
// the container's network namespace once it is filled (after the
// prestart and createRuntime hooks, where Docker fills it), recorded, and
// set up at boot by the supervisor, which runs inside that namespace.
//
// The modes:
//   - "none": the namespace has no interface with an address (podman
//     --network none): the VM has no network card.
//   - "tap": the guest owns the namespace's interface (the engine's veth):
//     a tap beside it with every frame mirrored both ways (tc's mirred
//     redirect, as Kata and urunc do; netlink.MirrorVeth), and the guest
//     given the interface's address, gateway and MAC, so the container's
//     address and the engine's published ports reach the program.
//   - "user": a user-mode network (passt, else QEMU's slirp) started by
//     the supervisor inside the namespace; kept for containers created by
//     an ops that chose it.
type Network struct {
	Mode      string   `json:"mode"`
	Interface string   `json:"interface,omitempty"` // the namespace's interface with an address
	Addrs     []string `json:"addrs,omitempty"`     // its addresses, CIDR
	Gateway   string   `json:"gateway,omitempty"`   // its default route's next hop
	MAC       string   `json:"mac,omitempty"`       // its MAC, the guest's
	// DNSRelay, in the tap mode, is the address the guest's resolv.conf
	// names in place of the engine's resolvers on the namespace's
	// loopback (DNSUpstreams, Docker's 127.0.0.11), which the guest
	// cannot reach: the supervisor answers there and relays to them
	// (relayDNS, startRelay).
	DNSRelay     string   `json:"dnsRelay,omitempty"`
	DNSUpstreams []string `json:"dnsUpstreams,omitempty"`
}

// dnsRelayAddr is the relay's address: link-local (no router forwards
// it), and none of the well-known ones (169.254.169.254, a cloud's
// metadata; 169.254.1.1, Calico's gateway; 169.254.20.10, Kubernetes'
// node-local DNS cache). It is on no interface: the supervisor answers
// for it on the guest's tap, and the tap's filters keep it from the
// redirect (netlink.Pass).
const dnsRelayAddr = "169.254.53.53"

// relayDNS, in the tap mode, points the guest's resolv.conf (among
// extra, the engine's files copied into the image) at the relay when it
// names resolvers on the namespace's loopback, and records them.
func (n *Network) relayDNS(extra []opsfs.Entry) {
	if n.Mode != "tap" {
		return
	}
	relay := netip.MustParseAddr(dnsRelayAddr)
	for i, e := range extra {
		if e.Path != "/etc/resolv.conf" || e.Kind != opsfs.KindFile {
			continue
		}
		out, upstreams := relayResolvConf(e.Data, relay)
		if len(upstreams) == 0 {
			return
		}
		extra[i].Data = out
		n.DNSRelay = dnsRelayAddr
		for _, u := range upstreams {
			n.DNSUpstreams = append(n.DNSUpstreams, u.String())
		}
	}
}

// Iface is what chooseNetwork reads of one interface.
type Iface struct {
	Name     string
	Up       bool
	Loopback bool
	Addrs    []netip.Prefix
}

// chooseNetwork is the one decision of how the VM joins the namespace
// whose interfaces are ifaces.
func chooseNetwork(ifaces []Iface) Network {
	for _, i := range ifaces {
		if i.Loopback || !i.Up {
			continue
		}
		var addrs []string
		for _, a := range i.Addrs {
			if a.Addr().IsGlobalUnicast() || a.Addr().IsPrivate() {
				addrs = append(addrs, a.String())
			}
		}
		if len(addrs) > 0 {
			return Network{Mode: "tap", Interface: i.Name, Addrs: addrs}
		}
	}
	return Network{Mode: "none"}
}

// readNetwork reads the calling thread's network namespace and chooses
// the VM's network there: for the tap mode, the one interface the guest
// takes over, with its gateway and MAC (netlink.Veth: two interfaces with
// addresses, or two addresses on one, are one error line).
func readNetwork() (Network, error) {
	ifaces, err := interfaces()
	if err != nil {
		return Network{}, err
	}
	n := chooseNetwork(ifaces)
	if n.Mode != "tap" {
		return n, nil
	}
	c, err := netlink.Dial()
	if err != nil {
		return Network{}, err
	}
	defer c.Close()
	v, err := c.Veth()
	if err != nil {
		return Network{}, fmt.Errorf("the container's network: %w", err)
	}
	exists, held, err := c.TapHeld(tapName)
	if err != nil {
		return Network{}, goerrors.Wrap(err, 0)
	}
	unmirror, err := claimVeth(exists, held, v.Name, v.Addr.String())
	if err != nil {
		return Network{}, err
	}
	if unmirror {
		if err := c.Unmirror(tapName, v.Name); err != nil {
			return Network{}, fmt.Errorf("removing the mirror a stopped VM left on %s: %w", v.Name, err)
		}
	}
	n.Interface, n.Addrs, n.MAC = v.Name, []string{v.Addr.String()}, v.MAC.String()
	if v.Gateway.IsValid() {
		n.Gateway = v.Gateway.String()
	}
	return n, nil
}

// claimVeth is the one decision of whether a VM may take the
// namespace's interface iface (address addr) when a mirror's tap is
// there (exists): one that a VM holds (held) is another container's
// unikernel, and one VM takes one address (a second container in a pod,
// or one joining another's network, is refused); one that nobody holds
// is what a killed VM's supervisor left, to be removed (unmirror).
func claimVeth(exists, held bool, iface, addr string) (unmirror bool, err error) {
	switch {
	case !exists:
		return false, nil
	case held:
		return false, fmt.Errorf("one unikernel per network namespace: %s (%s) is another container's VM already (a second container in a pod, or one joining another's network)", iface, addr)
	}
	return true, nil
}

// unmirrorLeftover removes, in the calling thread's network namespace,
// the mirror of iface that a VM killed with its supervisor left: its tap
// (when no VM holds it) and iface's ingress qdisc.
func unmirrorLeftover(iface string) error {
	c, err := netlink.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	exists, held, err := c.TapHeld(tapName)
	if err != nil || !exists || held {
		return err
	}
	return c.Unmirror(tapName, iface)
}

// interfaces reads the calling thread's network namespace.
func interfaces() ([]Iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	var out []Iface
	for _, i := range ifs {
		x := Iface{Name: i.Name, Up: i.Flags&net.FlagUp != 0, Loopback: i.Flags&net.FlagLoopback != 0}
		addrs, err := i.Addrs()
		if err != nil {
			return nil, goerrors.Wrap(err, 0)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ip, _ := netip.AddrFromSlice(n.IP)
				ones, _ := n.Mask.Size()
				x.Addrs = append(x.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
		out = append(out, x)
	}
	return out, nil
}

// configure sets what the image needs to know of the network: in the tap
// mode, the interface's address, mask and gateway as the guest's static
// address. The user mode and none need nothing: the guest takes the
// user-mode network's defaults.
func (n Network) configure(c *lepton.Config) {
	if n.Mode != "tap" || len(n.Addrs) == 0 {
		return
	}
	p, err := netip.ParsePrefix(n.Addrs[0])
	if err != nil || !p.Addr().Is4() {
		return
	}
	mask := net.CIDRMask(p.Bits(), 32)
	c.RunConfig.IPAddress = p.Addr().String()
	c.RunConfig.NetMask = net.IP(mask).String()
	c.RunConfig.Gateway = n.Gateway
}

// prepare is the VM's network card, made at boot inside the namespace,
// and what undoes what it made. failed hears of the DNS relay's queries
// that got no answer.
func (n Network) prepare(failed func(error)) (*qemu.Net, func(), error) {
	switch n.Mode {
	case "none", "":
		return &qemu.Net{Mode: "none"}, func() {}, nil
	case "user":
		net := qemu.Net{Mode: "user", Passt: qemu.PasstBinary()}
		net.Restrict = net.Passt == ""
		return &net, func() {}, nil
	case "tap":
		m, remove, err := netlink.MirrorVeth(tapName)
		if err != nil {
			remove()
			return nil, nil, fmt.Errorf("the container's network (%s): %w", n.Interface, err)
		}
		if m.Name != n.Interface {
			remove()
			return nil, nil, fmt.Errorf("the container's network changed since create: %s, not %s", m.Name, n.Interface)
		}
		stop, err := n.startRelay(m, failed)
		if err != nil {
			remove()
			return nil, nil, fmt.Errorf("the guest's DNS relay on %s: %w", m.Tap, err)
		}
		return &qemu.Net{Mode: "tap", Tap: m.Tap, MAC: m.MAC.String()}, func() { stop(); remove() }, nil
	}
	return nil, nil, fmt.Errorf("network mode %q is not known to this ops", n.Mode)
}

// startRelay starts, when the network has one, the guest's DNS relay on
// the mirror's tap (dnsrelay), in the calling process's namespace, where
// the upstreams are reachable; stop ends it and waits for it.
func (n Network) startRelay(m netlink.Mirrored, failed func(error)) (stop func(), err error) {
	if n.DNSRelay == "" {
		return func() {}, nil
	}
	addr, err := netip.ParseAddr(n.DNSRelay)
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	var upstreams []netip.AddrPort
	for _, u := range n.DNSUpstreams {
		a, err := netip.ParseAddrPort(u)
		if err != nil {
			return nil, goerrors.Wrap(err, 0)
		}
		upstreams = append(upstreams, a)
	}
	c, err := netlink.Dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	tap, err := c.LinkByName(m.Tap)
	if err != nil {
		return nil, err
	}
	if err := c.Pass(m.TapIndex, addr); err != nil {
		return nil, err
	}
	link, err := netlink.ListenPassed(m.TapIndex, addr)
	if err != nil {
		return nil, err
	}
	r := &dnsrelay.Relay{Addr: addr, MAC: tap.MAC, Upstreams: upstreams, MTU: m.MTU, Failed: failed}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Serve(ctx, link); err != nil {
			failed(err)
		}
	}()
	return func() { cancel(); link.Close(); <-done }, nil
}

// tapName is the VM's tap in the container's namespace, its only one.
const tapName = "ops0"

// String says the network in a few words, for the log.
func (n Network) String() string {
	if n.Mode == "tap" {
		s := fmt.Sprintf("the guest takes over %s (%v, gateway %s) through a tap mirrored onto it", n.Interface, n.Addrs, n.Gateway)
		if n.DNSRelay != "" {
			s += fmt.Sprintf("; its DNS resolver is %s, relayed to %v", n.DNSRelay, n.DNSUpstreams)
		}
		return s
	}
	if n.Mode == "user" {
		return fmt.Sprintf("user-mode network inside the container's namespace (its %s has %v; published ports are not forwarded yet)", n.Interface, n.Addrs)
	}
	return "no network (the container's namespace has no interface with an address)"
}
