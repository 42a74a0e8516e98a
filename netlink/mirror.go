//go:build linux

package netlink

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Mirror gives a VM's tap device the network of a container's veth, as
// Kata Containers (its default "tcfilter" model) and urunc do: it makes
// the tap named tap (unless it exists) with the veth's MTU, sets it up,
// and adds an ingress qdisc to each of the two with a filter that sends
// every frame arriving on one out of the other (tc's u32 match-all with
// a mirred egress redirect). It returns the tap's index; Remove undoes
// what it made.
//
// From then on the veth's frames are the VM's: none reaches this
// namespace's own stack, which keeps the veth's address (the engine, and
// tools like `ip addr` in the container, still see it) but no longer
// answers for it. The guest must take the veth's address, gateway and
// routes (Veth) and use the veth's MAC (veth.MAC) on its NIC, so its
// frames carry the MAC the engine's network knows for that address (what
// a bridge has learnt, static neighbour entries, MAC filters). The veth
// pair itself carries any MAC: a guest with another one is answered too,
// by whatever beyond the veth learns it afresh.
//
// A veth with an ingress qdisc already is an error: that is most likely
// another VM's mirror.
func (l *Links) Mirror(tap string, veth Link) (int, error) {
	ti, err := l.tap(tap)
	if err != nil {
		return 0, fmt.Errorf("mirroring %s to tap %s: %w", veth.Name, tap, err)
	}
	if ti == veth.Index {
		return 0, fmt.Errorf("mirroring %s to tap %s: the same link", veth.Name, tap)
	}
	if veth.MTU > 0 {
		if err := l.nl.setMTU(ti, veth.MTU); err != nil {
			return 0, fmt.Errorf("setting tap %s's MTU to %s's, %d: %w", tap, veth.Name, veth.MTU, err)
		}
	}
	if err := l.nl.LinkUp(ti); err != nil {
		return 0, fmt.Errorf("setting tap %s up: %w", tap, err)
	}
	for _, link := range []struct {
		name  string
		index int
	}{{veth.Name, veth.Index}, {tap, ti}} {
		if err := l.nl.addIngress(link.index); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return 0, fmt.Errorf("%s has an ingress qdisc already, so it cannot be mirrored (another VM's? tc qdisc show dev %s): %w", link.name, link.name, err)
			}
			return 0, fmt.Errorf("adding an ingress qdisc to %s: %w", link.name, err)
		}
		index := link.index
		l.undo = append(l.undo, func() { l.nl.delIngress(index) })
	}
	if err := l.nl.addRedirect(veth.Index, ti); err != nil {
		return 0, fmt.Errorf("redirecting %s's frames to tap %s: %w", veth.Name, tap, err)
	}
	if err := l.nl.addRedirect(ti, veth.Index); err != nil {
		return 0, fmt.Errorf("redirecting tap %s's frames to %s: %w", tap, veth.Name, err)
	}
	return ti, nil
}

// Mirrored is a namespace's network handed to a VM's tap.
type Mirrored struct {
	Iface    // the veth as the engine left it: the guest takes its MAC, address, gateway, routes and MTU
	Tap      string
	TapIndex int
}

// MirrorVeth gives a tap named tap, made in the calling thread's network
// namespace, the network of that namespace's one interface (Veth,
// Mirror). remove undoes only what it made; call it on every path, errors
// included.
func MirrorVeth(tap string) (m Mirrored, remove func(), err error) {
	l, err := OpenLinks()
	if err != nil {
		return Mirrored{}, func() {}, err
	}
	v, err := l.nl.Veth()
	if err != nil {
		return Mirrored{}, l.Remove, err
	}
	ti, err := l.Mirror(tap, v.Link)
	if err != nil {
		return Mirrored{}, l.Remove, err
	}
	return Mirrored{Iface: v, Tap: tap, TapIndex: ti}, l.Remove, nil
}

// setMTU sets a link's MTU.
func (c *Conn) setMTU(index, mtu int) error {
	return c.request(unix.RTM_NEWLINK, 0, mtuMsg(index, mtu))
}

// mtuMsg is RTM_NEWLINK's body setting a link's MTU: its index and
// IFLA_MTU.
func mtuMsg(index, mtu int) []byte {
	return append(ifinfo(index, 0, 0), attr(unix.IFLA_MTU, u32(uint32(mtu)))...)
}

// TapHeld says whether a tap named name is in the connection's
// namespace, and whether a process holds it open (a VM: the tap has a
// carrier only while one does). A mirror's tap that is there and held is
// another VM's; one that is there and not held is what a VM's killed
// supervisor left (Unmirror).
func (c *Conn) TapHeld(name string) (exists, held bool, err error) {
	l, err := c.LinkByName(name)
	if errors.Is(err, unix.ENODEV) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, l.Flags&unix.IFF_LOWER_UP != 0, nil
}

// Unmirror removes what a Mirror of veth to tap left in the connection's
// namespace when its maker could not undo it (a VM's supervisor killed):
// the tap, and the veth's ingress qdisc with its filter. What is not
// there is no error.
func (c *Conn) Unmirror(tap, veth string) error {
	if l, err := c.LinkByName(tap); err == nil {
		if err := c.deleteLink(l.Index); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("removing tap %s: %w", tap, err)
		}
	} else if !errors.Is(err, unix.ENODEV) {
		return err
	}
	l, err := c.LinkByName(veth)
	if errors.Is(err, unix.ENODEV) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.delIngress(l.Index); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing %s's ingress qdisc: %w", veth, err)
	}
	return nil
}
