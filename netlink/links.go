package netlink

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Links creates tap devices and bridges (and mirrors, Mirror) and
// remembers what it made, so Remove undoes exactly that and never touches
// what someone else made.
//
// A Links works in the network namespace its thread was in when
// OpenLinks was called (its netlink socket's), and Tap makes a tap device
// in the calling thread's: to work in another namespace, call both on
// one thread locked to it (runtime.LockOSThread, then setns), or from a
// process started there.
type Links struct {
	nl   *Conn
	undo []func() // how to remove what this Links made, oldest first
}

// OpenLinks opens a netlink connection for making links.
func OpenLinks() (*Links, error) {
	nl, err := Dial()
	if err != nil {
		return nil, err
	}
	return &Links{nl: nl}, nil
}

// Remove undoes what this Links made, newest first, and closes it.
func (l *Links) Remove() {
	for i := len(l.undo) - 1; i >= 0; i-- {
		l.undo[i]()
	}
	l.undo = nil
	l.nl.Close()
}

// made records a link this Links made, to delete on Remove.
func (l *Links) made(name string) {
	l.undo = append(l.undo, func() {
		if lk, err := l.nl.LinkByName(name); err == nil {
			l.nl.deleteLink(lk.Index)
		}
	})
}

// index is the index of a link in the namespace; ok is false when there
// is none of that name.
func (l *Links) index(name string) (i int, ok bool, err error) {
	lk, err := l.nl.LinkByName(name)
	if errors.Is(err, unix.ENODEV) {
		return 0, false, nil
	}
	return lk.Index, err == nil, err
}

// Tap returns the index of a tap device, creating it when missing.
func (l *Links) Tap(name string) (int, error) {
	i, err := l.tap(name)
	return i, privilegeHint(err)
}

func (l *Links) tap(name string) (int, error) {
	if i, ok, err := l.index(name); ok || err != nil {
		return i, err
	}
	if err := addTap(name); err != nil {
		return 0, err
	}
	l.made(name)
	i, ok, err := l.index(name)
	if err == nil && !ok {
		err = fmt.Errorf("tap %s was made in another network namespace than this netlink socket's", name)
	}
	return i, err
}

// Bridge returns the index of a bridge, creating it when missing, and
// sets it up.
func (l *Links) Bridge(name string) (int, error) {
	i, ok, err := l.index(name)
	if err != nil {
		return 0, err
	}
	if !ok {
		if err := l.nl.AddBridge(name); err != nil {
			return 0, privilegeHint(fmt.Errorf("creating bridge %s: %w", name, err))
		}
		l.made(name)
		if i, _, err = l.index(name); err != nil {
			return 0, err
		}
	}
	return i, l.nl.LinkUp(i)
}

// Attach puts a tap on a bridge and sets the tap up.
func (l *Links) Attach(tap, bridge int) error {
	if err := l.nl.setMaster(tap, bridge); err != nil {
		return privilegeHint(fmt.Errorf("adding a tap to its bridge: %w", err))
	}
	return l.nl.LinkUp(tap)
}

// Up sets a link up.
func (l *Links) Up(index int) error { return privilegeHint(l.nl.LinkUp(index)) }

// AddAddr gives a link an IPv4 address with its prefix length.
func (l *Links) AddAddr(index int, p netip.Prefix) error {
	if !p.Addr().Is4() {
		return fmt.Errorf("%s is not an IPv4 prefix", p)
	}
	return l.nl.AddAddr(index, p.Addr().As4(), p.Bits())
}

// SetupTap makes a tap device (attached to bridge, made too when missing,
// when bridge is not empty) unless they exist, and gives the bridge the
// address bridgeIP ("" for none; a /prefix, else netmask, else /24). remove
// deletes only what it made; call it on every path, errors included.
func SetupTap(tap, bridge, bridgeIP, netmask string) (remove func(), err error) {
	var addr netip.Prefix
	if bridgeIP != "" {
		if bridge == "" {
			return func() {}, fmt.Errorf("--bridgeipaddress %s: name the bridge with --bridgename", bridgeIP)
		}
		if addr, err = bridgePrefix(bridgeIP, netmask); err != nil {
			return func() {}, err
		}
	}
	l, err := OpenLinks()
	if err != nil {
		return func() {}, err
	}
	ti, err := l.Tap(tap)
	if err != nil {
		return l.Remove, err
	}
	if bridge == "" {
		return l.Remove, l.Up(ti)
	}
	bi, err := l.Bridge(bridge)
	if err != nil {
		return l.Remove, err
	}
	if err := l.Attach(ti, bi); err != nil {
		return l.Remove, err
	}
	if addr.IsValid() {
		if err := l.AddAddr(bi, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return l.Remove, privilegeHint(err)
		}
	}
	return l.Remove, nil
}

// bridgePrefix reads --bridgeipaddress: an IPv4 address with a /prefix,
// else with netmask's prefix, else /24.
func bridgePrefix(ip, netmask string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(ip); err == nil && p.Addr().Is4() {
		return p, nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("--bridgeipaddress %q: write an IPv4 address, e.g. 10.3.0.1 or 10.3.0.1/24", ip)
	}
	bits := 24
	if netmask != "" {
		m := net.ParseIP(netmask).To4()
		if m == nil {
			return netip.Prefix{}, fmt.Errorf("--netmask %q is not an IPv4 netmask", netmask)
		}
		bits, _ = net.IPMask(m).Size()
	}
	return netip.PrefixFrom(a, bits), nil
}

func privilegeHint(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w: bridged networking needs root (or CAP_NET_ADMIN); without it, leave out --bridged", err)
	}
	return err
}
