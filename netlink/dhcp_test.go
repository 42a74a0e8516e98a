//go:build linux

package netlink

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// reply builds a server's reply the way a DHCP server sends it.
func reply(xid uint32, msgType byte) []byte {
	return replyWith(xid, option(53, []byte{msgType}), option(54, []byte{10, 0, 2, 2}), option(1, []byte{255, 255, 255, 0}),
		option(3, []byte{10, 0, 2, 2}), option(6, []byte{10, 0, 2, 3, 1, 1, 1, 1}), []byte{255})
}

// replyWith builds a reply offering 10.0.2.15 with these options, as
// they are (the end option too).
func replyWith(xid uint32, options ...[]byte) []byte {
	m := dhcpMessage(xid, []byte{1, 2, 3, 4, 5, 6}, 0, nil)
	m[0] = 2
	copy(m[16:20], []byte{10, 0, 2, 15})
	m = m[:240]
	for _, o := range options {
		m = append(m, o...)
	}
	p := udpPacket(m)
	binary.BigEndian.PutUint16(p[20:], 67)
	binary.BigEndian.PutUint16(p[22:], 68)
	return p
}

func TestParseReply(t *testing.T) {
	r := parseReply(reply(42, dhcpOffer), 42, dhcpOffer)
	if r == nil {
		t.Fatal("offer not parsed")
	}
	if r.yiaddr != [4]byte{10, 0, 2, 15} || r.server != [4]byte{10, 0, 2, 2} || r.router.String() != "10.0.2.2" ||
		r.mask.String() != "255.255.255.0" || len(r.dns) != 2 || r.dns[1].String() != "1.1.1.1" {
		t.Fatalf("%+v", r)
	}
	for name, tc := range map[string]struct {
		p    []byte
		xid  uint32
		want byte
	}{
		"other transaction": {reply(42, dhcpOffer), 43, dhcpOffer},
		"other type":        {reply(42, dhcpOffer), 42, dhcpAck},
		"nak":               {reply(42, dhcpNak), 42, dhcpAck},
		"truncated":         {reply(42, dhcpOffer)[:100], 42, dhcpOffer},
	} {
		if parseReply(tc.p, tc.xid, tc.want) != nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The request is a well-formed IPv4 packet: its header checksum holds.
	p := udpPacket(dhcpMessage(1, make([]byte, 6), dhcpDiscover, nil))
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		t.Fatalf("IP header checksum does not verify: %x", sum)
	}
}

func FuzzParseReply(f *testing.F) {
	f.Add(reply(7, dhcpAck))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseReply(b, 7, dhcpAck)
	})
}

func TestARPAnnouncement(t *testing.T) {
	mac := []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	got := arpAnnouncement(mac, netip.MustParseAddr("10.0.2.15"))
	want := []byte{0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 15}
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

// TestParseReplyOptions: how the options a server sends are read.
func TestParseReplyOptions(t *testing.T) {
	offer := option(53, []byte{dhcpOffer})
	for _, tc := range []struct {
		name   string
		p      []byte
		ok     bool
		router string
		dns    string
		mask   string
	}{
		{"pads between options are skipped", replyWith(1, []byte{0, 0}, offer, []byte{0}, option(3, []byte{10, 0, 2, 2}), []byte{255}), true, "10.0.2.2", "[]", "invalid IP"},
		{"the first of several routers", replyWith(1, offer, option(3, []byte{10, 0, 2, 2, 10, 0, 2, 1}), []byte{255}), true, "10.0.2.2", "[]", "invalid IP"},
		{"a name server list cut mid-address keeps the whole ones", replyWith(1, offer, option(6, []byte{10, 0, 2, 3, 8, 8}), []byte{255}), true, "invalid IP", "[10.0.2.3]", "invalid IP"},
		{"a mask of the wrong length is ignored", replyWith(1, offer, option(1, []byte{255, 255, 0}), []byte{255}), true, "invalid IP", "[]", "invalid IP"},
		{"an option running past the end ends the options", replyWith(1, offer, []byte{1, 4, 255, 255}), true, "invalid IP", "[]", "invalid IP"},
		{"nothing after the end option counts", replyWith(1, []byte{255}, offer), false, "", "", ""},
		{"no message type", replyWith(1, option(3, []byte{10, 0, 2, 2}), []byte{255}), false, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parseReply(tc.p, 1, dhcpOffer)
			if (r != nil) != tc.ok {
				t.Fatalf("accepted: %v, want %v", r != nil, tc.ok)
			}
			if r == nil {
				return
			}
			if r.yiaddr != [4]byte{10, 0, 2, 15} || r.router.String() != tc.router || fmt.Sprint(r.dns) != tc.dns || r.mask.String() != tc.mask {
				t.Fatalf("%+v", r)
			}
		})
	}
	// Packets that are no reply to a DHCP client.
	good := reply(1, dhcpOffer)
	for name, edit := range map[string]func(p []byte){
		"not UDP":                func(p []byte) { p[9] = 6 },
		"not to port 68":         func(p []byte) { binary.BigEndian.PutUint16(p[22:], 67) },
		"a request, not a reply": func(p []byte) { p[28] = 1 },
		"no magic cookie":        func(p []byte) { p[28+236] = 0 },
	} {
		p := slices.Clone(good)
		edit(p)
		if parseReply(p, 1, dhcpOffer) != nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// An IP header with options (IHL 6): the UDP header follows them.
	p := append(slices.Clone(good[:20]), 1, 1, 1, 1)
	p = append(p, good[20:]...)
	p[0] = 0x46
	if parseReply(p, 1, dhcpOffer) == nil {
		t.Error("a reply whose IP header has options: not parsed")
	}
}

func TestLease(t *testing.T) {
	for _, tc := range []struct{ mask, want string }{
		{"255.255.255.0", "10.0.2.15/24"},
		{"255.255.0.0", "10.0.2.15/16"},
		{"255.255.255.252", "10.0.2.15/30"},
		{"255.255.255.255", "10.0.2.15/32"},
		{"0.0.0.0", "10.0.2.15/0"},
		{"", "10.0.2.15/24"}, // no mask option
	} {
		r := &dhcpReply{yiaddr: [4]byte{10, 0, 2, 15}, router: netip.MustParseAddr("10.0.2.2"), dns: []netip.Addr{netip.MustParseAddr("10.0.2.3")}}
		if tc.mask != "" {
			r.mask = netip.MustParseAddr(tc.mask)
		}
		l := r.lease()
		if l.Addr.String() != tc.want || l.Gateway != r.router || !slices.Equal(l.DNS, r.dns) {
			t.Errorf("mask %q: lease %+v, want %s", tc.mask, l, tc.want)
		}
	}
}

// TestDHCPMessage: the client's message, field by field (RFC 2131).
func TestDHCPMessage(t *testing.T) {
	mac := []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	req := append(option(50, []byte{10, 0, 2, 15}), option(54, []byte{10, 0, 2, 2})...)
	m := dhcpMessage(0xdeadbeef, mac, dhcpRequest, req)
	if m[0] != 1 || m[1] != 1 || m[2] != 6 || m[3] != 0 {
		t.Errorf("op, htype, hlen, hops: %v", m[:4])
	}
	if binary.BigEndian.Uint32(m[4:]) != 0xdeadbeef || binary.BigEndian.Uint16(m[10:]) != 0x8000 {
		t.Errorf("xid %x, flags %x", m[4:8], m[10:12])
	}
	if !bytes.Equal(m[12:28], make([]byte, 16)) || !bytes.Equal(m[28:34], mac) || !bytes.Equal(m[34:236], make([]byte, 202)) {
		t.Error("addresses: only chaddr is set")
	}
	opts := m[236:]
	want := []byte{99, 130, 83, 99, 53, 1, dhcpRequest, 50, 4, 10, 0, 2, 15, 54, 4, 10, 0, 2, 2, 55, 3, 1, 3, 6, 255}
	if !bytes.Equal(opts, want) {
		t.Errorf("cookie and options %v, want %v", opts, want)
	}
}

// TestUDPPacket: the IPv4 and UDP headers around a client's message.
func TestUDPPacket(t *testing.T) {
	payload := []byte("0123456789")
	p := udpPacket(payload)
	if len(p) != 38 || p[0] != 0x45 || binary.BigEndian.Uint16(p[2:]) != 38 || p[8] != 64 || p[9] != 17 {
		t.Errorf("IP header %v", p[:20])
	}
	if !bytes.Equal(p[12:16], []byte{0, 0, 0, 0}) || !bytes.Equal(p[16:20], []byte{255, 255, 255, 255}) {
		t.Errorf("from %v to %v, want 0.0.0.0 to the broadcast address", p[12:16], p[16:20])
	}
	if binary.BigEndian.Uint16(p[20:]) != 68 || binary.BigEndian.Uint16(p[22:]) != 67 || binary.BigEndian.Uint16(p[24:]) != 18 || !bytes.Equal(p[28:], payload) {
		t.Errorf("UDP %v", p[20:])
	}
}
