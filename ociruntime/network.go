package ociruntime

import (
	"fmt"
	"net"
	"net/netip"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/lepton"
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
//   - "user": a user-mode network (passt, else QEMU's slirp) started by
//     the supervisor inside the namespace: the guest's connections go
//     out as the namespace's own. The engine's published ports do not
//     reach the guest yet, nor does the namespace's address.
//
// A tap beside the namespace's interface with traffic mirrored both ways
// (the guest owning the interface's address) is to become a third mode:
// chooseNetwork picks it, configure gives the guest the address, and
// prepare makes the tap and the redirect.
type Network struct {
	Mode      string   `json:"mode"`
	Interface string   `json:"interface,omitempty"` // the namespace's interface with an address
	Addrs     []string `json:"addrs,omitempty"`     // its addresses, CIDR
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
			return Network{Mode: "user", Interface: i.Name, Addrs: addrs}
		}
	}
	return Network{Mode: "none"}
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

// configure sets what the image needs to know of the network. The user
// mode and none need nothing: the guest takes the user-mode network's
// defaults.
func (n Network) configure(c *lepton.Config) {}

// prepare is the VM's network card, made at boot inside the namespace,
// and what undoes what it made.
func (n Network) prepare() (*qemu.Net, func(), error) {
	switch n.Mode {
	case "none", "":
		return &qemu.Net{Mode: "none"}, func() {}, nil
	case "user":
		net := qemu.Net{Mode: "user", Passt: qemu.PasstBinary()}
		net.Restrict = net.Passt == ""
		return &net, func() {}, nil
	}
	return nil, nil, fmt.Errorf("network mode %q is not known to this ops", n.Mode)
}

// String says the network in a few words, for the log.
func (n Network) String() string {
	if n.Mode == "user" {
		return fmt.Sprintf("user-mode network inside the container's namespace (its %s has %v; published ports are not forwarded yet)", n.Interface, n.Addrs)
	}
	return "no network (the container's namespace has no interface with an address)"
}
