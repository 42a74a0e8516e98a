//go:build linux

package netlink

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// reply builds a server's reply the way a DHCP server sends it.
func reply(xid uint32, msgType byte) []byte {
	m := dhcpMessage(xid, []byte{1, 2, 3, 4, 5, 6}, msgType, nil)
	m[0] = 2
	copy(m[16:20], []byte{10, 0, 2, 15})
	m = m[:240]
	m = append(m, option(53, []byte{msgType})...)
	m = append(m, option(54, []byte{10, 0, 2, 2})...)
	m = append(m, option(1, []byte{255, 255, 255, 0})...)
	m = append(m, option(3, []byte{10, 0, 2, 2})...)
	m = append(m, option(6, []byte{10, 0, 2, 3, 1, 1, 1, 1})...)
	m = append(m, 255)
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
