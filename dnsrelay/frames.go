package dnsrelay

import (
	"encoding/binary"
	"net/netip"
)

// The few Ethernet, ARP, IPv4 and UDP numbers a relay reads and writes.
const (
	etherARP  = 0x0806
	etherIPv4 = 0x0800
	ethHeader = 14
	arpLen    = 28
	ipHeader  = 20 // what the relay writes: no options
	udpHeader = 8
	protoUDP  = 17
	dnsPort   = 53
)

// query is a DNS query read from a guest's frame.
type query struct {
	guestMAC, relayMAC [6]byte // the frame's source, and the destination it was sent to
	src                netip.Addr
	srcPort            uint16
	payload            []byte // the DNS message, within the frame
}

// answerARP is the reply to frame when it is an ARP request asking for
// the relay's address, else nil.
func (r *Relay) answerARP(frame []byte) []byte {
	if len(frame) < ethHeader+arpLen || binary.BigEndian.Uint16(frame[12:]) != etherARP || len(r.MAC) != 6 {
		return nil
	}
	a := frame[ethHeader:]
	// Ethernet, IPv4, their lengths, a request.
	if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != etherIPv4 || a[4] != 6 || a[5] != 4 ||
		binary.BigEndian.Uint16(a[6:]) != 1 || netip.AddrFrom4([4]byte(a[24:28])) != r.Addr {
		return nil
	}
	out := make([]byte, ethHeader+arpLen)
	copy(out[0:6], a[8:14]) // to the asker
	copy(out[6:12], r.MAC)
	binary.BigEndian.PutUint16(out[12:], etherARP)
	b := out[ethHeader:]
	copy(b[0:6], a[0:6]) // hardware and protocol types and lengths
	binary.BigEndian.PutUint16(b[6:], 2)
	copy(b[8:14], r.MAC)
	copy(b[14:18], a[24:28])
	copy(b[18:24], a[8:14])
	copy(b[24:28], a[14:18])
	return out
}

// parseQuery reads frame as a UDP datagram to the relay's address, port
// 53, in one unfragmented IPv4 packet; ok is false for anything else.
func (r *Relay) parseQuery(frame []byte) (q query, ok bool) {
	if len(frame) < ethHeader+ipHeader+udpHeader || binary.BigEndian.Uint16(frame[12:]) != etherIPv4 {
		return q, false
	}
	ip := frame[ethHeader:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	switch {
	case ip[0]>>4 != 4, ihl < ipHeader, total < ihl+udpHeader, total > len(ip),
		binary.BigEndian.Uint16(ip[6:])&0x3fff != 0, // more fragments, or an offset
		ip[9] != protoUDP, netip.AddrFrom4([4]byte(ip[16:20])) != r.Addr:
		return q, false
	}
	udp := ip[ihl:total]
	n := int(binary.BigEndian.Uint16(udp[4:]))
	if binary.BigEndian.Uint16(udp[2:]) != dnsPort || n < udpHeader || n > len(udp) {
		return q, false
	}
	copy(q.guestMAC[:], frame[6:12])
	copy(q.relayMAC[:], frame[0:6])
	q.src = netip.AddrFrom4([4]byte(ip[12:16]))
	q.srcPort = binary.BigEndian.Uint16(udp[0:])
	q.payload = udp[udpHeader:n]
	return q, true
}

// replyFrames is answer sent back to q's asker: one UDP datagram from
// the relay's address and port 53, in as many IPv4 fragments as the MTU
// needs, from the MAC the query was sent to.
func (r *Relay) replyFrames(q query, answer []byte) [][]byte {
	udp := make([]byte, udpHeader+len(answer))
	binary.BigEndian.PutUint16(udp[0:], dnsPort)
	binary.BigEndian.PutUint16(udp[2:], q.srcPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[udpHeader:], answer)
	src, dst := r.Addr.As4(), q.src.As4()
	binary.BigEndian.PutUint16(udp[6:], udpChecksum(src, dst, udp))

	// Fragments carry multiples of 8 bytes, all but the last.
	room := (orDefault(r.MTU, 1500) - ipHeader) &^ 7
	id := uint16(r.ipID.Add(1))
	var frames [][]byte
	for off := 0; off < len(udp); off += room {
		part := udp[off:min(off+room, len(udp))]
		f := make([]byte, ethHeader+ipHeader+len(part))
		copy(f[0:6], q.guestMAC[:])
		copy(f[6:12], q.relayMAC[:])
		binary.BigEndian.PutUint16(f[12:], etherIPv4)
		ip := f[ethHeader:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(ipHeader+len(part)))
		binary.BigEndian.PutUint16(ip[4:], id)
		frag := uint16(off / 8)
		if off+len(part) < len(udp) {
			frag |= 0x2000 // more fragments
		}
		binary.BigEndian.PutUint16(ip[6:], frag)
		ip[8] = 64
		ip[9] = protoUDP
		copy(ip[12:16], src[:])
		copy(ip[16:20], dst[:])
		binary.BigEndian.PutUint16(ip[10:], ^sum(0, ip[:ipHeader]))
		copy(ip[ipHeader:], part)
		frames = append(frames, f)
	}
	return frames
}

// udpChecksum is a UDP datagram's checksum over the IPv4 pseudo-header
// (its own checksum field zero); 0 is sent as all ones.
func udpChecksum(src, dst [4]byte, udp []byte) uint16 {
	pseudo := make([]byte, 12)
	copy(pseudo[0:], src[:])
	copy(pseudo[4:], dst[:])
	pseudo[9] = protoUDP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(udp)))
	c := ^sum(sum(0, pseudo), udp)
	if c == 0 {
		return 0xffff
	}
	return c
}

// sum adds b to the ones' complement sum s (the Internet checksum's,
// folded to 16 bits).
func sum(s uint16, b []byte) uint16 {
	acc := uint32(s)
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}
