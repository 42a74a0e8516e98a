//go:build linux

package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	goerrors "github.com/go-errors/errors"
	"golang.org/x/sys/unix"
)

// Reading a network namespace: its links, addresses and routes, as the
// kernel reports them to RTM_GETLINK, RTM_GETADDR and RTM_GETROUTE dumps.
// The replies are parsed here rather than with the syscall package, whose
// attribute parser refuses message types it does not know and stops at
// the first malformed attribute: every length is checked against what is
// there, and a reply that does not hold together is an error, never a
// panic (FuzzDump).

// Link is a network interface.
type Link struct {
	Index int
	Name  string
	Kind  string           // the link kind ("veth", "tun", "bridge"); "" when it has none (lo, a NIC)
	MAC   net.HardwareAddr // nil when it has none
	MTU   int
	Flags uint32 // unix.IFF_UP, unix.IFF_LOOPBACK, unix.IFF_LOWER_UP, ...
}

// Up says whether the link is set up.
func (l Link) Up() bool { return l.Flags&unix.IFF_UP != 0 }

// Loopback says whether the link is a loopback.
func (l Link) Loopback() bool { return l.Flags&unix.IFF_LOOPBACK != 0 }

// Addr is an address on a link.
type Addr struct {
	Index     int
	Prefix    netip.Prefix // the address and its prefix length
	Secondary bool         // one more address in a subnet the link has an address in already
}

// Route is a route as the kernel holds it.
type Route struct {
	Dst      netip.Prefix // 0.0.0.0/0 for a default route
	Gateway  netip.Addr   // the next hop; not valid for a route straight out of the link
	Src      netip.Addr   // the preferred source address; not valid when none is set
	Index    int          // the link it goes out of; 0 when none is named (a multipath route)
	Table    uint32       // unix.RT_TABLE_MAIN, unix.RT_TABLE_LOCAL, ...
	Protocol uint8        // who made it: unix.RTPROT_KERNEL for the kernel, from an address
	Scope    uint8        // unix.RT_SCOPE_UNIVERSE, unix.RT_SCOPE_LINK, ...
	Type     uint8        // unix.RTN_UNICAST, unix.RTN_LOCAL, ...
	Metric   uint32
}

// Default says whether this is a default route.
func (r Route) Default() bool { return r.Dst.IsValid() && r.Dst.Bits() == 0 }

// Links lists the links of the connection's network namespace.
func (c *Conn) Links() ([]Link, error) {
	msgs, err := c.dump(unix.RTM_GETLINK, ifinfo(0, 0, 0))
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var links []Link
	for _, m := range msgs {
		if m.typ != unix.RTM_NEWLINK {
			continue
		}
		l, err := parseLink(m.body)
		if err != nil {
			return nil, goerrors.Errorf("listing links: %w", err)
		}
		links = append(links, l)
	}
	return links, nil
}

// LinkByName finds a link of the connection's network namespace by name
// (unlike IfIndex, which reads sysfs: that is the namespace's only when
// it was mounted there). A missing link is an error wrapping
// unix.ENODEV.
func (c *Conn) LinkByName(name string) (Link, error) {
	if err := checkName(name); err != nil {
		return Link{}, err
	}
	m, err := c.get(unix.RTM_GETLINK, append(ifinfo(0, 0, 0), attr(unix.IFLA_IFNAME, append([]byte(name), 0))...))
	if errors.Is(err, unix.ENODEV) {
		return Link{}, fmt.Errorf("no interface %s in this network namespace: %w", name, err)
	}
	if err != nil {
		return Link{}, fmt.Errorf("looking up interface %s: %w", name, err)
	}
	l, err := parseLink(m.body)
	if err == nil && (m.typ != unix.RTM_NEWLINK || l.Name != name) {
		err = fmt.Errorf("netlink: asked for link %s, got message type %d for %q", name, m.typ, l.Name)
	}
	if err != nil {
		return Link{}, goerrors.Errorf("looking up interface %s: %w", name, err)
	}
	return l, nil
}

// Addrs lists the IPv4 addresses of the connection's network namespace.
func (c *Conn) Addrs() ([]Addr, error) {
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = unix.AF_INET
	msgs, err := c.dump(unix.RTM_GETADDR, b)
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	var addrs []Addr
	for _, m := range msgs {
		if m.typ != unix.RTM_NEWADDR {
			continue
		}
		a, err := parseAddr(m.body)
		if err != nil {
			return nil, goerrors.Errorf("listing addresses: %w", err)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// Routes lists the IPv4 routes of the connection's network namespace, of
// every table.
func (c *Conn) Routes() ([]Route, error) {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET
	msgs, err := c.dump(unix.RTM_GETROUTE, b)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	var routes []Route
	for _, m := range msgs {
		if m.typ != unix.RTM_NEWROUTE {
			continue
		}
		r, err := parseRoute(m.body)
		if err != nil {
			return nil, goerrors.Errorf("listing routes: %w", err)
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// get sends a request for one object and returns the kernel's answer.
func (c *Conn) get(typ uint16, body []byte) (nlmsg, error) {
	c.seq++
	msg := message(c.seq, typ, 0, body)
	binary.LittleEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST) // the answer, not an acknowledgement
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nlmsg{}, goerrors.Wrap(err, 0)
	}
	buf := make([]byte, dumpBuf)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			return nlmsg{}, goerrors.Wrap(err, 0)
		}
		if n > len(buf) {
			return nlmsg{}, goerrors.Errorf("a netlink reply of %d bytes does not fit in %d", n, len(buf))
		}
		msgs, err := parseMessages(append([]byte(nil), buf[:n]...))
		if err != nil {
			return nlmsg{}, goerrors.Wrap(err, 0)
		}
		for _, m := range msgs {
			if m.seq != c.seq {
				continue
			}
			if m.typ == unix.NLMSG_ERROR {
				if _, _, err := collect(nil, []nlmsg{m}, m.seq); err != nil {
					return nlmsg{}, err
				}
				return nlmsg{}, goerrors.Errorf("netlink: an acknowledgement where an answer was asked for")
			}
			return m, nil
		}
	}
}

// dumpBuf is the receive buffer of a dump: the kernel fills each reply up
// to the largest buffer a reader has offered, at most 32 KiB.
const dumpBuf = 64 << 10

// dump sends a dump request of type typ and returns every message of the
// reply up to its end. A dump the kernel marks interrupted (the table
// changed while it was read) is asked for again.
func (c *Conn) dump(typ uint16, body []byte) ([]nlmsg, error) {
	recv := func(buf []byte) (int, error) {
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		return n, err
	}
	for range 10 {
		c.seq++
		msg := message(c.seq, typ, 0, body)
		// A dump is acknowledged by its end (NLMSG_DONE), not NLM_F_ACK.
		binary.LittleEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
		if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, goerrors.Wrap(err, 0)
		}
		out, interrupted, err := readDump(recv, c.seq)
		if err != nil || !interrupted {
			return out, err
		}
	}
	return nil, goerrors.Errorf("the kernel's table kept changing while it was read (10 tries)")
}

// readDump reads the datagrams of dump seq with recv (which returns a
// datagram's whole length, as recvfrom with MSG_TRUNC does) up to the
// dump's end.
func readDump(recv func([]byte) (int, error), seq uint32) (out []nlmsg, interrupted bool, err error) {
	buf := make([]byte, dumpBuf)
	for {
		n, err := recv(buf)
		if err != nil {
			return nil, false, goerrors.Wrap(err, 0)
		}
		if n > len(buf) {
			return nil, false, goerrors.Errorf("a netlink reply of %d bytes does not fit in %d", n, len(buf))
		}
		// The messages kept point into what was read: a copy, as the
		// buffer takes the next datagram.
		msgs, err := parseMessages(append([]byte(nil), buf[:n]...))
		if err != nil {
			return nil, false, goerrors.Wrap(err, 0)
		}
		var res dumpResult
		out, res, err = collect(out, msgs, seq)
		if err != nil {
			return nil, false, err
		}
		interrupted = interrupted || res.interrupted
		if res.done {
			return out, interrupted, nil
		}
	}
}

type dumpResult struct{ done, interrupted bool }

// collect appends to out the messages of dump seq among msgs and says
// whether its end was among them, and whether the kernel marked any of
// them interrupted. An error message ends the dump with its error.
func collect(out, msgs []nlmsg, seq uint32) ([]nlmsg, dumpResult, error) {
	var res dumpResult
	for _, m := range msgs {
		if m.seq != seq {
			continue
		}
		if m.flags&unix.NLM_F_DUMP_INTR != 0 {
			res.interrupted = true
		}
		switch m.typ {
		case unix.NLMSG_DONE:
			// Since Linux 4.x the end carries the dump's error, if any.
			if len(m.body) >= 4 {
				if e := int32(binary.LittleEndian.Uint32(m.body)); e < 0 {
					return out, res, goerrors.Wrap(unix.Errno(-e), 0)
				}
			}
			res.done = true
			return out, res, nil
		case unix.NLMSG_ERROR:
			if len(m.body) < 4 {
				return out, res, goerrors.Errorf("short netlink error")
			}
			if e := int32(binary.LittleEndian.Uint32(m.body)); e < 0 {
				return out, res, goerrors.Wrap(unix.Errno(-e), 0)
			}
			res.done = true // an acknowledgement: nothing more comes
			return out, res, nil
		case unix.NLMSG_NOOP, unix.NLMSG_OVERRUN:
			continue
		}
		out = append(out, m)
	}
	return out, res, nil
}

// nlmsg is one netlink message: its header's fields and what follows it.
type nlmsg struct {
	typ, flags uint16
	seq        uint32
	body       []byte
}

// parseMessages splits a datagram into its messages. Each starts at a
// multiple of 4 bytes; the last one's padding may be missing.
func parseMessages(b []byte) ([]nlmsg, error) {
	var out []nlmsg
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return out, fmt.Errorf("netlink: %d bytes left over, less than a header", len(b))
		}
		l := uint64(binary.LittleEndian.Uint32(b[0:]))
		if l < unix.NLMSG_HDRLEN || l > uint64(len(b)) {
			return out, fmt.Errorf("netlink: a message of %d bytes in %d", l, len(b))
		}
		out = append(out, nlmsg{
			typ:   binary.LittleEndian.Uint16(b[4:]),
			flags: binary.LittleEndian.Uint16(b[6:]),
			seq:   binary.LittleEndian.Uint32(b[8:]),
			body:  b[unix.NLMSG_HDRLEN:l],
		})
		b = b[min(align4(int(l)), len(b)):]
	}
	return out, nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// rtattr is one route attribute: its type (without the nested and byte
// order flags) and its data.
type rtattr struct {
	typ  uint16
	data []byte
}

// parseAttrs splits attributes as parseMessages splits messages.
func parseAttrs(b []byte) ([]rtattr, error) {
	var out []rtattr
	for len(b) > 0 {
		if len(b) < 4 {
			return out, fmt.Errorf("netlink: %d bytes left over, less than an attribute header", len(b))
		}
		l := int(binary.LittleEndian.Uint16(b[0:]))
		if l < 4 || l > len(b) {
			return out, fmt.Errorf("netlink: an attribute of %d bytes in %d", l, len(b))
		}
		out = append(out, rtattr{typ: binary.LittleEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER), data: b[4:l]})
		b = b[min(align4(l), len(b)):]
	}
	return out, nil
}

// cstring is a string attribute up to its terminating NUL.
func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func attrU32(a rtattr) (uint32, error) {
	if len(a.data) != 4 {
		return 0, fmt.Errorf("netlink: attribute %d holds %d bytes, not 4", a.typ, len(a.data))
	}
	return binary.LittleEndian.Uint32(a.data), nil
}

// attrAddr reads an address attribute of a family: 4 bytes for IPv4, 16
// for IPv6.
func attrAddr(family byte, a rtattr) (netip.Addr, error) {
	switch {
	case family == unix.AF_INET && len(a.data) == 4:
		return netip.AddrFrom4([4]byte(a.data)), nil
	case family == unix.AF_INET6 && len(a.data) == 16:
		return netip.AddrFrom16([16]byte(a.data)), nil
	}
	return netip.Addr{}, fmt.Errorf("netlink: attribute %d holds %d bytes, not an address of family %d", a.typ, len(a.data), family)
}

// parseLink reads an RTM_NEWLINK message's body: a struct ifinfomsg
// (family, pad, type, index, flags, change) and its attributes.
func parseLink(b []byte) (Link, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return Link{}, fmt.Errorf("netlink: a link message of %d bytes", len(b))
	}
	l := Link{Index: int(int32(binary.LittleEndian.Uint32(b[4:]))), Flags: binary.LittleEndian.Uint32(b[8:])}
	attrs, err := parseAttrs(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return Link{}, err
	}
	for _, a := range attrs {
		switch a.typ {
		case unix.IFLA_IFNAME:
			l.Name = cstring(a.data)
		case unix.IFLA_ADDRESS:
			l.MAC = net.HardwareAddr(append([]byte(nil), a.data...))
		case unix.IFLA_MTU:
			mtu, err := attrU32(a)
			if err != nil {
				return Link{}, err
			}
			l.MTU = int(mtu)
		case unix.IFLA_LINKINFO:
			info, err := parseAttrs(a.data)
			if err != nil {
				return Link{}, err
			}
			for _, i := range info {
				if i.typ == unix.IFLA_INFO_KIND {
					l.Kind = cstring(i.data)
				}
			}
		}
	}
	if l.Name == "" {
		return Link{}, fmt.Errorf("netlink: link %d has no name", l.Index)
	}
	return l, nil
}

// parseAddr reads an RTM_NEWADDR message's body: a struct ifaddrmsg
// (family, prefix length, flags, scope, index) and its attributes. The
// address is IFA_LOCAL: IFA_ADDRESS is the peer's on a point-to-point
// link, and the same otherwise.
func parseAddr(b []byte) (Addr, error) {
	if len(b) < unix.SizeofIfAddrmsg {
		return Addr{}, fmt.Errorf("netlink: an address message of %d bytes", len(b))
	}
	family, bits, flags := b[0], int(b[1]), uint32(b[2])
	a := Addr{Index: int(binary.LittleEndian.Uint32(b[4:]))}
	attrs, err := parseAttrs(b[unix.SizeofIfAddrmsg:])
	if err != nil {
		return Addr{}, err
	}
	var local, address netip.Addr
	for _, at := range attrs {
		var err error
		switch at.typ {
		case unix.IFA_LOCAL:
			local, err = attrAddr(family, at)
		case unix.IFA_ADDRESS:
			address, err = attrAddr(family, at)
		case unix.IFA_FLAGS: // all the flags, where the header has room for 8
			flags, err = attrU32(at)
		}
		if err != nil {
			return Addr{}, err
		}
	}
	ip := local
	if !ip.IsValid() {
		ip = address
	}
	if !ip.IsValid() {
		return Addr{}, fmt.Errorf("netlink: an address message of link %d without an address", a.Index)
	}
	if bits > ip.BitLen() {
		return Addr{}, fmt.Errorf("netlink: address %s with prefix length %d", ip, bits)
	}
	a.Prefix = netip.PrefixFrom(ip, bits)
	a.Secondary = flags&unix.IFA_F_SECONDARY != 0
	return a, nil
}

// parseRoute reads an RTM_NEWROUTE message's body: a struct rtmsg
// (family, destination and source prefix lengths, tos, table, protocol,
// scope, type, flags) and its attributes.
func parseRoute(b []byte) (Route, error) {
	if len(b) < unix.SizeofRtMsg {
		return Route{}, fmt.Errorf("netlink: a route message of %d bytes", len(b))
	}
	family, bits := b[0], int(b[1])
	r := Route{Table: uint32(b[4]), Protocol: b[5], Scope: b[6], Type: b[7]}
	attrs, err := parseAttrs(b[unix.SizeofRtMsg:])
	if err != nil {
		return Route{}, err
	}
	var dst netip.Addr
	for _, a := range attrs {
		var err error
		switch a.typ {
		case unix.RTA_DST:
			dst, err = attrAddr(family, a)
		case unix.RTA_GATEWAY:
			r.Gateway, err = attrAddr(family, a)
		case unix.RTA_PREFSRC:
			r.Src, err = attrAddr(family, a)
		case unix.RTA_OIF:
			var i uint32
			i, err = attrU32(a)
			r.Index = int(i)
		case unix.RTA_TABLE: // the whole table number, where the header has room for 8 bits
			r.Table, err = attrU32(a)
		case unix.RTA_PRIORITY:
			r.Metric, err = attrU32(a)
		}
		if err != nil {
			return Route{}, err
		}
	}
	if !dst.IsValid() {
		// No destination: the default route (0.0.0.0/0 or ::/0).
		switch family {
		case unix.AF_INET:
			dst = netip.IPv4Unspecified()
		case unix.AF_INET6:
			dst = netip.IPv6Unspecified()
		default:
			return Route{}, fmt.Errorf("netlink: a route of family %d", family)
		}
	}
	if bits > dst.BitLen() {
		return Route{}, fmt.Errorf("netlink: route to %s with prefix length %d", dst, bits)
	}
	r.Dst = netip.PrefixFrom(dst, bits)
	return r, nil
}
