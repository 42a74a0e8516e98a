//go:build linux

package netlink

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The files testdata/dump-*.hex are the kernel's replies (6.18) to the
// dumps Links, Addrs and Routes ask for (sequence number 1), read in a
// network namespace set up as a container engine sets one up:
//
//	ip link add eth0 address 02:42:c0:00:02:01 type veth peer name peer0
//	ip link set eth0 mtu 1400 up
//	ip addr add 192.0.2.1/24 dev eth0
//	ip route add default via 192.0.2.254 dev eth0
//	ip route add 198.51.100.0/24 via 192.0.2.2 dev eth0
//	ip route add 203.0.113.7 dev eth0 scope link
//
// (lo up; peer0 left down, in the same namespace.)
func captured(t testing.TB, name string) []byte {
	t.Helper()
	s, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(s)), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseDump reads a captured dump as Conn.dump would, then each message
// with parse.
func parseDump[T any](t *testing.T, name string, typ uint16, parse func([]byte) (T, error)) []T {
	t.Helper()
	msgs, err := parseMessages(captured(t, name))
	if err != nil {
		t.Fatal(err)
	}
	msgs, res, err := collect(nil, msgs, 1)
	if err != nil || !res.done || res.interrupted {
		t.Fatalf("%s: %+v, %v", name, res, err)
	}
	var out []T
	for _, m := range msgs {
		if m.typ != typ {
			t.Fatalf("%s: message type %d", name, m.typ)
		}
		v, err := parse(m.body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, v)
	}
	return out
}

func TestParseCapturedDumps(t *testing.T) {
	links := parseDump(t, "dump-links.hex", unix.RTM_NEWLINK, parseLink)
	if len(links) != 3 {
		t.Fatalf("%d links: %+v", len(links), links)
	}
	for i, want := range []struct {
		index                 int
		name, kind            string
		mtu                   int
		up, loopback, hasMAC6 bool
	}{
		{1, "lo", "", 65536, true, true, true},
		{2, "peer0", "veth", 1500, false, false, true},
		{3, "eth0", "veth", 1400, true, false, true},
	} {
		l := links[i]
		if l.Index != want.index || l.Name != want.name || l.Kind != want.kind || l.MTU != want.mtu ||
			l.Up() != want.up || l.Loopback() != want.loopback || len(l.MAC) != 6 {
			t.Errorf("link %d: %+v, want %+v", i, l, want)
		}
	}
	if links[2].MAC.String() != "02:42:c0:00:02:01" {
		t.Errorf("eth0's MAC %s", links[2].MAC)
	}

	addrs := parseDump(t, "dump-addrs.hex", unix.RTM_NEWADDR, parseAddr)
	wantAddrs := []Addr{
		{Index: 1, Prefix: netip.MustParsePrefix("127.0.0.1/8")},
		{Index: 3, Prefix: netip.MustParsePrefix("192.0.2.1/24")},
	}
	if !reflect.DeepEqual(addrs, wantAddrs) {
		t.Errorf("addresses %+v, want %+v", addrs, wantAddrs)
	}

	routes := parseDump(t, "dump-routes.hex", unix.RTM_NEWROUTE, parseRoute)
	var got []string
	for _, r := range routes {
		got = append(got, routeString(r))
	}
	want := []string{
		// The main table, as `ip route` shows it.
		"main 0.0.0.0/0 via 192.0.2.254 dev 3 proto boot scope 0 type 1",
		"main 192.0.2.0/24 dev 3 src 192.0.2.1 proto kernel scope 253 type 1",
		"main 198.51.100.0/24 via 192.0.2.2 dev 3 proto boot scope 0 type 1",
		"main 203.0.113.7/32 dev 3 proto boot scope 253 type 1",
		// The local table: the addresses' own and broadcast routes.
		"local 127.0.0.0/8 dev 1 src 127.0.0.1 proto kernel scope 254 type 2",
		"local 127.0.0.1/32 dev 1 src 127.0.0.1 proto kernel scope 254 type 2",
		"local 127.255.255.255/32 dev 1 src 127.0.0.1 proto kernel scope 253 type 3",
		"local 192.0.2.1/32 dev 3 src 192.0.2.1 proto kernel scope 254 type 2",
		"local 192.0.2.255/32 dev 3 src 192.0.2.1 proto kernel scope 253 type 3",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	v, err := pickVeth(links, addrs, routes)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "eth0" || v.Index != 3 || v.MTU != 1400 || v.MAC.String() != "02:42:c0:00:02:01" ||
		v.Addr.String() != "192.0.2.1/24" || v.Gateway.String() != "192.0.2.254" || len(v.Routes) != 2 ||
		routeString(v.Routes[0]) != want[2] || routeString(v.Routes[1]) != want[3] {
		t.Errorf("Veth: %+v", v)
	}
}

func routeString(r Route) string {
	table := map[uint32]string{unix.RT_TABLE_MAIN: "main", unix.RT_TABLE_LOCAL: "local"}[r.Table]
	proto := map[uint8]string{unix.RTPROT_KERNEL: "kernel", unix.RTPROT_BOOT: "boot"}[r.Protocol]
	s := table + " " + r.Dst.String()
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	s += fmt.Sprintf(" dev %d", r.Index)
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	return s + fmt.Sprintf(" proto %s scope %d type %d", proto, r.Scope, r.Type)
}

// msg is a netlink message with a body, as the kernel sends it.
func msg(typ, flags uint16, seq uint32, body []byte) []byte {
	b := message(seq, typ, 0, body)
	binary.LittleEndian.PutUint16(b[6:], flags)
	return b
}

func TestParseMessages(t *testing.T) {
	two := append(msg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 5, []byte{1, 2, 3}), 0) // padded to 4
	two = append(two, msg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 5, []byte{0, 0, 0, 0})...)
	for _, tc := range []struct {
		name  string
		b     []byte
		count int
		err   string
	}{
		{"two", two, 2, ""},
		{"the last cut short", two[:len(two)-4], 1, "a message of 20 bytes in 16"},
		{"empty", nil, 0, ""},
		{"a short header", two[:10], 0, "left over"},
		{"a length past the end", two[:18], 0, "a message of 19 bytes in 18"},
		{"a length under a header", []byte{8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, "a message of 8 bytes"},
		{"a huge length", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, "a message of 4294967295 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := parseMessages(tc.b)
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) || len(msgs) != tc.count {
				t.Fatalf("%d messages, %v; want %d, %q", len(msgs), err, tc.count, tc.err)
			}
		})
	}
	msgs, _ := parseMessages(two)
	if msgs[0].typ != unix.RTM_NEWLINK || msgs[0].seq != 5 || msgs[0].flags != unix.NLM_F_MULTI || !bytes.Equal(msgs[0].body, []byte{1, 2, 3}) ||
		msgs[1].typ != unix.NLMSG_DONE {
		t.Fatalf("%+v", msgs)
	}
	// A last message whose padding is missing is read.
	unpadded := msg(unix.RTM_NEWLINK, 0, 1, []byte{9})
	if msgs, err := parseMessages(unpadded); err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].body, []byte{9}) {
		t.Fatalf("unpadded: %+v %v", msgs, err)
	}
}

func TestParseAttrs(t *testing.T) {
	nested := attr(unix.IFLA_LINKINFO|unix.NLA_F_NESTED, attr(unix.IFLA_INFO_KIND, []byte("veth\x00")))
	for _, tc := range []struct {
		name  string
		b     []byte
		types []uint16
		err   string
	}{
		{"two", append(attr(3, []byte("eth0\x00")), attr(4, u32(1400))...), []uint16{3, 4}, ""},
		{"the nested flag dropped", nested, []uint16{unix.IFLA_LINKINFO}, ""},
		{"an empty one", attr(7, nil), []uint16{7}, ""},
		{"the last unpadded", attr(3, []byte{1})[:5], []uint16{3}, ""},
		{"a short header", []byte{8, 0, 1}, nil, "left over"},
		{"a length under a header", []byte{2, 0, 1, 0}, nil, "an attribute of 2 bytes"},
		{"a length past the end", []byte{9, 0, 1, 0, 0, 0, 0, 0}, nil, "an attribute of 9 bytes in 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attrs, err := parseAttrs(tc.b)
			var types []uint16
			for _, a := range attrs {
				types = append(types, a.typ)
			}
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) || !reflect.DeepEqual(types, tc.types) {
				t.Fatalf("%v, %v; want %v, %q", types, err, tc.types, tc.err)
			}
		})
	}
}

// Messages built here as the kernel builds them.
func linkBody(index int, flags uint32, attrs ...[]byte) []byte {
	return append(ifinfo(index, flags, 0), bytes.Join(attrs, nil)...)
}

func addrBody(family byte, bits int, flags byte, index int, attrs ...[]byte) []byte {
	b := []byte{family, byte(bits), flags, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[4:], uint32(index))
	return append(b, bytes.Join(attrs, nil)...)
}

func routeBody(family byte, bits int, table, proto, scope, typ byte, attrs ...[]byte) []byte {
	b := []byte{family, byte(bits), 0, 0, table, proto, scope, typ, 0, 0, 0, 0}
	return append(b, bytes.Join(attrs, nil)...)
}

func TestParseLink(t *testing.T) {
	mac := []byte{2, 0, 0, 0, 0, 1}
	for _, tc := range []struct {
		name string
		b    []byte
		want Link
		err  string
	}{
		{"a veth", linkBody(7, unix.IFF_UP, attr(unix.IFLA_IFNAME, []byte("eth0\x00")), attr(unix.IFLA_MTU, u32(1400)),
			attr(unix.IFLA_ADDRESS, mac), attr(unix.IFLA_LINKINFO, attr(unix.IFLA_INFO_KIND, []byte("veth\x00")))),
			Link{Index: 7, Name: "eth0", Kind: "veth", MAC: mac, MTU: 1400, Flags: unix.IFF_UP}, ""},
		{"a name without its NUL", linkBody(1, 0, attr(unix.IFLA_IFNAME, []byte("lo"))), Link{Index: 1, Name: "lo"}, ""},
		{"unknown attributes", linkBody(1, 0, attr(999, []byte{1}), attr(unix.IFLA_IFNAME, []byte("x\x00"))), Link{Index: 1, Name: "x"}, ""},
		{"no name", linkBody(1, 0), Link{}, "no name"},
		{"a short header", ifinfo(1, 0, 0)[:15], Link{}, "a link message of 15 bytes"},
		{"a short MTU", linkBody(1, 0, attr(unix.IFLA_IFNAME, []byte("x\x00")), attr(unix.IFLA_MTU, []byte{1, 2})), Link{}, "holds 2 bytes"},
		{"a bad nested attribute", linkBody(1, 0, attr(unix.IFLA_IFNAME, []byte("x\x00")), attr(unix.IFLA_LINKINFO, []byte{9, 0, 1, 0})), Link{}, "an attribute of 9 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parseLink(tc.b)
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) || !reflect.DeepEqual(l, tc.want) {
				t.Fatalf("%+v, %v; want %+v, %q", l, err, tc.want, tc.err)
			}
		})
	}
}

// check compares a result with what a table wants: the same string, or
// for an error ("error: ..."), an error containing what follows.
func check(t *testing.T, got string, err error, want string) {
	t.Helper()
	if werr, isErr := strings.CutPrefix(want, "error: "); isErr {
		if err == nil || !strings.Contains(err.Error(), werr) {
			t.Fatalf("%s, %v; want an error with %q", got, err, werr)
		}
		return
	}
	if err != nil || got != want {
		t.Fatalf("%s, %v; want %s", got, err, want)
	}
}

func TestParseAddr(t *testing.T) {
	ip := []byte{192, 0, 2, 1}
	peer := []byte{192, 0, 2, 9}
	for _, tc := range []struct {
		name string
		b    []byte
		want string // the prefix, "secondary" after it, or the error
	}{
		{"local and address", addrBody(unix.AF_INET, 24, 0, 3, attr(unix.IFA_ADDRESS, ip), attr(unix.IFA_LOCAL, ip)), "192.0.2.1/24"},
		{"point to point: local wins", addrBody(unix.AF_INET, 32, 0, 3, attr(unix.IFA_ADDRESS, peer), attr(unix.IFA_LOCAL, ip)), "192.0.2.1/32"},
		{"address only", addrBody(unix.AF_INET, 24, 0, 3, attr(unix.IFA_ADDRESS, ip)), "192.0.2.1/24"},
		{"secondary in the header", addrBody(unix.AF_INET, 24, unix.IFA_F_SECONDARY, 3, attr(unix.IFA_LOCAL, ip)), "192.0.2.1/24 secondary"},
		{"secondary in IFA_FLAGS", addrBody(unix.AF_INET, 24, 0, 3, attr(unix.IFA_LOCAL, ip), attr(unix.IFA_FLAGS, u32(unix.IFA_F_SECONDARY))), "192.0.2.1/24 secondary"},
		{"IFA_FLAGS overrides the header", addrBody(unix.AF_INET, 24, unix.IFA_F_SECONDARY, 3, attr(unix.IFA_LOCAL, ip), attr(unix.IFA_FLAGS, u32(0))), "192.0.2.1/24"},
		{"IPv6", addrBody(unix.AF_INET6, 64, 0, 3, attr(unix.IFA_ADDRESS, netip.MustParseAddr("2001:db8::1").AsSlice())), "2001:db8::1/64"},
		{"no address", addrBody(unix.AF_INET, 24, 0, 3), "error: without an address"},
		{"an IPv6 length for IPv4", addrBody(unix.AF_INET, 24, 0, 3, attr(unix.IFA_LOCAL, make([]byte, 16))), "error: holds 16 bytes"},
		{"an unknown family", addrBody(77, 24, 0, 3, attr(unix.IFA_LOCAL, ip)), "error: not an address of family 77"},
		{"a prefix too long", addrBody(unix.AF_INET, 33, 0, 3, attr(unix.IFA_LOCAL, ip)), "error: prefix length 33"},
		{"a short header", addrBody(unix.AF_INET, 24, 0, 3)[:7], "error: an address message of 7 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseAddr(tc.b)
			got := a.Prefix.String()
			if a.Secondary {
				got += " secondary"
			}
			if a.Index != 3 {
				got += fmt.Sprintf(" index %d", a.Index)
			}
			check(t, got, err, tc.want)
		})
	}
}

func TestParseRoute(t *testing.T) {
	gw := []byte{192, 0, 2, 254}
	oif := attr(unix.RTA_OIF, u32(3))
	for _, tc := range []struct {
		name string
		b    []byte
		want string // routeString, or the error
	}{
		{"default", routeBody(unix.AF_INET, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, 0, unix.RTN_UNICAST, attr(unix.RTA_GATEWAY, gw), oif),
			"main 0.0.0.0/0 via 192.0.2.254 dev 3 proto boot scope 0 type 1"},
		{"on the link, with a source", routeBody(unix.AF_INET, 24, unix.RT_TABLE_MAIN, unix.RTPROT_KERNEL, unix.RT_SCOPE_LINK, unix.RTN_UNICAST,
			attr(unix.RTA_DST, []byte{192, 0, 2, 0}), attr(unix.RTA_PREFSRC, []byte{192, 0, 2, 1}), oif),
			"main 192.0.2.0/24 dev 3 src 192.0.2.1 proto kernel scope 253 type 1"},
		{"a table past 255", routeBody(unix.AF_INET, 0, 252, 0, 0, unix.RTN_UNICAST, attr(unix.RTA_TABLE, u32(1000)), oif),
			"table 1000 0.0.0.0/0 dev 3 proto  scope 0 type 1"},
		{"IPv6 default", routeBody(unix.AF_INET6, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, 0, unix.RTN_UNICAST, oif),
			"main ::/0 dev 3 proto boot scope 0 type 1"},
		{"a destination of the wrong size", routeBody(unix.AF_INET, 24, unix.RT_TABLE_MAIN, 0, 0, 1, attr(unix.RTA_DST, []byte{1, 2, 3})), "error: holds 3 bytes"},
		{"a short OIF", routeBody(unix.AF_INET, 0, unix.RT_TABLE_MAIN, 0, 0, 1, attr(unix.RTA_OIF, []byte{3})), "error: holds 1 bytes"},
		{"a prefix too long", routeBody(unix.AF_INET, 40, unix.RT_TABLE_MAIN, 0, 0, 1, attr(unix.RTA_DST, gw)), "error: prefix length 40"},
		{"no destination of an unknown family", routeBody(99, 0, unix.RT_TABLE_MAIN, 0, 0, 1), "error: a route of family 99"},
		{"a short header", routeBody(unix.AF_INET, 0, 0, 0, 0, 0)[:11], "error: a route message of 11 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseRoute(tc.b)
			got := routeString(r)
			if r.Table != unix.RT_TABLE_MAIN {
				got = fmt.Sprintf("table %d%s", r.Table, got)
			}
			check(t, got, err, tc.want)
		})
	}
}

func TestCollect(t *testing.T) {
	link := func(seq uint32, flags uint16) nlmsg {
		return nlmsg{typ: unix.RTM_NEWLINK, flags: flags, seq: seq}
	}
	done := func(seq uint32, errno int32) nlmsg {
		return nlmsg{typ: unix.NLMSG_DONE, seq: seq, body: u32(uint32(-errno))}
	}
	for _, tc := range []struct {
		name       string
		msgs       []nlmsg
		count      int
		done, intr bool
		err        error
	}{
		{"part of a dump", []nlmsg{link(4, unix.NLM_F_MULTI), link(4, unix.NLM_F_MULTI)}, 2, false, false, nil},
		{"its end", []nlmsg{link(4, unix.NLM_F_MULTI), done(4, 0)}, 1, true, false, nil},
		{"an old dump's messages", []nlmsg{link(3, 0), done(3, 0), link(4, 0)}, 1, false, false, nil},
		{"interrupted", []nlmsg{link(4, unix.NLM_F_MULTI|unix.NLM_F_DUMP_INTR), done(4, 0)}, 1, true, true, nil},
		{"an error at the end", []nlmsg{done(4, int32(unix.EMSGSIZE))}, 0, false, false, unix.EMSGSIZE},
		{"an error message", []nlmsg{{typ: unix.NLMSG_ERROR, seq: 4, body: done(4, int32(unix.EPERM)).body}}, 0, false, false, unix.EPERM},
		{"an end without an error number", []nlmsg{{typ: unix.NLMSG_DONE, seq: 4}}, 0, true, false, nil},
		{"noise", []nlmsg{{typ: unix.NLMSG_NOOP, seq: 4}, link(4, 0)}, 1, false, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, res, err := collect(nil, tc.msgs, 4)
			if len(out) != tc.count || res.done != tc.done || res.interrupted != tc.intr || (err == nil) != (tc.err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Fatalf("%d messages, %+v, %v", len(out), res, err)
			}
		})
	}
}

func TestPickVeth(t *testing.T) {
	lo := Link{Index: 1, Name: "lo", Flags: unix.IFF_UP | unix.IFF_LOOPBACK, MTU: 65536}
	eth := Link{Index: 3, Name: "eth0", Kind: "veth", Flags: unix.IFF_UP, MTU: 1500}
	eth1 := Link{Index: 4, Name: "eth1", Kind: "veth", Flags: unix.IFF_UP, MTU: 1500}
	down := eth1
	down.Flags = 0
	addr := func(index int, p string) Addr { return Addr{Index: index, Prefix: netip.MustParsePrefix(p)} }
	loAddr := addr(1, "127.0.0.1/8")
	route := func(index int, dst, gw string, metric uint32) Route {
		r := Route{Dst: netip.MustParsePrefix(dst), Index: index, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT, Type: unix.RTN_UNICAST, Metric: metric}
		if gw != "" {
			r.Gateway = netip.MustParseAddr(gw)
		}
		return r
	}
	kernel := route(3, "10.88.0.0/16", "", 0)
	kernel.Protocol, kernel.Src = unix.RTPROT_KERNEL, netip.MustParseAddr("10.88.0.5")
	local := route(3, "10.88.0.5/32", "", 0)
	local.Table, local.Type = unix.RT_TABLE_LOCAL, unix.RTN_LOCAL
	for _, tc := range []struct {
		name   string
		links  []Link
		addrs  []Addr
		routes []Route
		want   string // "eth0 ADDR gw GW routes [...]", or the error
	}{
		{"docker", []Link{lo, eth}, []Addr{loAddr, addr(3, "10.88.0.5/16")},
			[]Route{route(3, "0.0.0.0/0", "10.88.0.1", 0), kernel, local},
			"eth0 10.88.0.5/16 gw 10.88.0.1 routes []"},
		{"calico: a /32 and an on-link gateway", []Link{lo, eth}, []Addr{loAddr, addr(3, "10.1.2.3/32")},
			[]Route{route(3, "0.0.0.0/0", "169.254.1.1", 0), route(3, "169.254.1.1/32", "", 0)},
			"eth0 10.1.2.3/32 gw 169.254.1.1 routes [169.254.1.1/32]"},
		{"the lowest metric's gateway", []Link{eth}, []Addr{addr(3, "10.0.0.2/24")},
			[]Route{route(3, "0.0.0.0/0", "10.0.0.9", 200), route(3, "0.0.0.0/0", "10.0.0.1", 100)},
			"eth0 10.0.0.2/24 gw 10.0.0.1 routes [0.0.0.0/0 via 10.0.0.9]"},
		{"a default route without a gateway", []Link{eth}, []Addr{addr(3, "10.0.0.2/24")},
			[]Route{route(3, "0.0.0.0/0", "", 0)},
			"eth0 10.0.0.2/24 gw invalid IP routes [0.0.0.0/0]"},
		{"another link's routes", []Link{eth, down}, []Addr{addr(3, "10.0.0.2/24"), addr(4, "10.9.0.2/24")},
			[]Route{route(4, "0.0.0.0/0", "10.9.0.1", 0), route(4, "10.7.0.0/16", "10.9.0.1", 0)},
			"eth0 10.0.0.2/24 gw invalid IP routes []"},
		{"IPv6 addresses and a link without addresses", []Link{lo, eth, eth1}, []Addr{addr(3, "10.0.0.2/24"), addr(3, "2001:db8::2/64"), addr(4, "2001:db8::3/64")},
			nil, "eth0 10.0.0.2/24 gw invalid IP routes []"},
		{"none", []Link{lo, eth}, []Addr{loAddr}, nil, "error: no interface other than the loopback"},
		{"only a link that is down", []Link{lo, down}, []Addr{addr(4, "10.0.0.2/24")}, nil, "error: no interface is up with an IPv4 address in this network namespace (down: eth1)"},
		{"two", []Link{eth, eth1}, []Addr{addr(3, "10.0.0.2/24"), addr(4, "10.9.0.2/24")}, nil,
			"error: 2 interfaces are up with an IPv4 address in this network namespace (eth0 10.0.0.2/24, eth1 10.9.0.2/24)"},
		{"two addresses", []Link{eth}, []Addr{addr(3, "10.0.0.2/24"), addr(3, "10.0.0.3/24")}, nil,
			"error: interface eth0 has 2 IPv4 addresses (10.0.0.2/24, 10.0.0.3/24): a VM takes one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := pickVeth(tc.links, tc.addrs, tc.routes)
			var got string
			if err == nil {
				var rs []string
				for _, r := range v.Routes {
					s := r.Dst.String()
					if r.Gateway.IsValid() {
						s += " via " + r.Gateway.String()
					}
					rs = append(rs, s)
				}
				got = fmt.Sprintf("%s %s gw %s routes [%s]", v.Name, v.Addr, v.Gateway, strings.Join(rs, ", "))
			}
			check(t, got, err, tc.want)
		})
	}
}

// FuzzDump: whatever a reply holds, reading it ends in messages or an
// error, never a panic, and what it reads holds together.
func FuzzDump(f *testing.F) {
	for _, name := range []string{"dump-links.hex", "dump-addrs.hex", "dump-routes.hex"} {
		b := captured(f, name)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add(msg(unix.RTM_NEWADDR, 0, 1, addrBody(unix.AF_INET, 24, 0, 3, attr(unix.IFA_LOCAL, []byte{1, 2, 3, 4}))))
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := parseMessages(b)
		if err != nil && len(msgs) > 0 && len(b) == 0 {
			t.Fatal("messages out of nothing")
		}
		collect(nil, msgs, 1)
		var links []Link
		var addrs []Addr
		var routes []Route
		for _, m := range msgs {
			if l, err := parseLink(m.body); err == nil {
				if l.Name == "" || strings.ContainsRune(l.Name, 0) {
					t.Fatalf("link name %q", l.Name)
				}
				links = append(links, l)
			}
			if a, err := parseAddr(m.body); err == nil {
				if !a.Prefix.IsValid() {
					t.Fatalf("address %v", a.Prefix)
				}
				addrs = append(addrs, a)
			}
			if r, err := parseRoute(m.body); err == nil {
				if !r.Dst.IsValid() {
					t.Fatalf("route to %v", r.Dst)
				}
				routes = append(routes, r)
			}
		}
		if v, err := pickVeth(links, addrs, routes); err == nil && (!v.Addr.IsValid() || v.Loopback() || !v.Up()) {
			t.Fatalf("Veth chose %+v", v)
		}
	})
}

// TestReadDump: a dump comes in several datagrams, read into one buffer;
// the messages of each must outlive the next.
func TestReadDump(t *testing.T) {
	whole := captured(t, "dump-links.hex")
	msgs, err := parseMessages(whole)
	if err != nil {
		t.Fatal(err)
	}
	// One datagram per message, as the kernel sends a dump of large
	// messages.
	var datagrams [][]byte
	for range msgs {
		l := align4(int(binary.LittleEndian.Uint32(whole[0:])))
		datagrams = append(datagrams, whole[:l])
		whole = whole[l:]
	}
	for _, tc := range []struct {
		name string
		recv func(i int, buf []byte) (int, error)
		err  string
	}{
		{"whole", func(i int, buf []byte) (int, error) { return copy(buf, datagrams[i]), nil }, ""},
		{"a datagram too large", func(i int, buf []byte) (int, error) { return len(buf) + 1, nil }, "does not fit"},
		{"an error", func(i int, buf []byte) (int, error) { return 0, unix.ENOBUFS }, "no buffer space"},
		{"an error reply", func(i int, buf []byte) (int, error) {
			return copy(buf, msg(unix.NLMSG_ERROR, 0, 1, u32(uint32(0xffffffff)))), nil // -1: EPERM
		}, "not permitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			out, intr, err := readDump(func(buf []byte) (int, error) { n, err := tc.recv(i, buf); i++; return n, err }, 1)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("%v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || intr || i != len(datagrams) || len(out) != 3 {
				t.Fatalf("%d messages from %d datagrams, %v, %v", len(out), i, intr, err)
			}
			for j, want := range []string{"lo", "peer0", "eth0"} {
				if l, err := parseLink(out[j].body); err != nil || l.Name != want {
					t.Fatalf("message %d: %+v %v", j, l, err)
				}
			}
		})
	}
}

// TestDumpHere reads the test's own network namespace, which needs no
// privilege: every reply parses, and the loopback is there.
func TestDumpHere(t *testing.T) {
	c, err := Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	links, err := c.Links()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Addrs(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Routes(); err != nil {
		t.Fatal(err)
	}
	lo, err := c.LinkByName("lo")
	if err != nil || !lo.Loopback() || !slices.ContainsFunc(links, func(l Link) bool { return l.Index == lo.Index && l.Name == "lo" }) {
		t.Fatalf("lo: %+v, %v; links %+v", lo, err, links)
	}
	if _, err := c.LinkByName("ops-none0"); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("a missing link: %v", err)
	}
}
