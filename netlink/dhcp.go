//go:build linux

package netlink

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Lease is what a DHCP server handed out.
type Lease struct {
	Addr    netip.Prefix
	Gateway netip.Addr
	DNS     []netip.Addr
}

const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpAck      = 5
	dhcpNak      = 6
)

// DHCP asks for an IPv4 lease on an interface that is up but has no
// address yet, over a packet socket (no address is needed to send).
func DHCP(ifindex int, mac []byte, timeout time.Duration) (*Lease, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}); err != nil {
		return nil, err
	}
	// From the kernel, not math/rand: the Linux guest's init seeds that
	// before its snapshot point, so every restored copy would draw the
	// same transaction ID and could take another copy's lease.
	var x [4]byte
	if _, err := rand.Read(x[:]); err != nil {
		return nil, err
	}
	xid := binary.BigEndian.Uint32(x[:])
	deadline := time.Now().Add(timeout)
	send := func(msgType byte, extra []byte) error {
		pkt := udpPacket(dhcpMessage(xid, mac, msgType, extra))
		to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex, Halen: 6}
		copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		return unix.Sendto(fd, pkt, 0, to)
	}
	var offer *dhcpReply
	for offer == nil {
		if time.Now().After(deadline) {
			return nil, errors.New("no DHCP offer")
		}
		if err := send(dhcpDiscover, nil); err != nil {
			return nil, err
		}
		offer, _ = receive(fd, xid, dhcpOffer, time.Second)
	}
	req := append(option(50, offer.yiaddr[:]), option(54, offer.server[:])...)
	for {
		if time.Now().After(deadline) {
			return nil, errors.New("no DHCP acknowledgement")
		}
		if err := send(dhcpRequest, req); err != nil {
			return nil, err
		}
		ack, err := receive(fd, xid, dhcpAck, time.Second)
		if err != nil {
			continue
		}
		return ack.lease(), nil
	}
}

// lease is what an acknowledgement hands out: the address with the
// subnet mask's prefix length (its leading ones; /24 without a mask), the
// router and the name servers.
func (ack *dhcpReply) lease() *Lease {
	bits := 24
	if ack.mask.IsValid() {
		m := ack.mask.As4()
		bits = 0
		for v := binary.BigEndian.Uint32(m[:]); v&0x80000000 != 0; v <<= 1 {
			bits++
		}
	}
	return &Lease{Addr: netip.PrefixFrom(netip.AddrFrom4(ack.yiaddr), bits), Gateway: ack.router, DNS: ack.dns}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func option(code byte, data []byte) []byte { return append([]byte{code, byte(len(data))}, data...) }

// dhcpMessage builds a BOOTP request asking for a broadcast reply.
func dhcpMessage(xid uint32, mac []byte, msgType byte, extra []byte) []byte {
	m := make([]byte, 240)
	m[0], m[1], m[2] = 1, 1, 6 // BOOTREQUEST, Ethernet, 6-byte address
	binary.BigEndian.PutUint32(m[4:], xid)
	binary.BigEndian.PutUint16(m[10:], 0x8000) // broadcast
	copy(m[28:], mac)
	copy(m[236:], []byte{99, 130, 83, 99}) // magic cookie
	m = append(m, option(53, []byte{msgType})...)
	m = append(m, extra...)
	m = append(m, option(55, []byte{1, 3, 6})...)
	return append(m, 255)
}

// udpPacket wraps a DHCP message from 0.0.0.0:68 to 255.255.255.255:67.
func udpPacket(payload []byte) []byte {
	ip := make([]byte, 20+8, 28+len(payload))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(28+len(payload)))
	ip[8], ip[9] = 64, 17 // TTL, UDP
	copy(ip[16:20], []byte{255, 255, 255, 255})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(ip[20:], 68)
	binary.BigEndian.PutUint16(ip[22:], 67)
	binary.BigEndian.PutUint16(ip[24:], uint16(8+len(payload)))
	return append(ip, payload...)
}

type dhcpReply struct {
	yiaddr, server [4]byte
	mask, router   netip.Addr
	dns            []netip.Addr
}

// receive waits for a reply of type want to our transaction.
func receive(fd int, xid uint32, want byte, wait time.Duration) (*dhcpReply, error) {
	end := time.Now().Add(wait)
	buf := make([]byte, 1600)
	for time.Now().Before(end) {
		tv := unix.NsecToTimeval(time.Until(end).Nanoseconds())
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			return nil, err
		}
		if r := parseReply(buf[:n], xid, want); r != nil {
			return r, nil
		}
	}
	return nil, errors.New("timeout")
}

func parseReply(p []byte, xid uint32, want byte) *dhcpReply {
	if len(p) < 28 || p[9] != 17 {
		return nil
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+8+240 || binary.BigEndian.Uint16(p[ihl+2:]) != 68 {
		return nil
	}
	m := p[ihl+8:]
	if m[0] != 2 || binary.BigEndian.Uint32(m[4:]) != xid || string(m[236:240]) != "\x63\x82\x53\x63" {
		return nil
	}
	r := &dhcpReply{}
	copy(r.yiaddr[:], m[16:20])
	var msgType byte
	for o := m[240:]; len(o) >= 2 && o[0] != 255; {
		if o[0] == 0 {
			o = o[1:]
			continue
		}
		code, l := o[0], int(o[1])
		if len(o) < 2+l {
			break
		}
		v := o[2 : 2+l]
		switch {
		case code == 53 && l == 1:
			msgType = v[0]
		case code == 54 && l == 4:
			copy(r.server[:], v)
		case code == 1 && l == 4:
			r.mask = netip.AddrFrom4([4]byte(v))
		case code == 3 && l >= 4:
			r.router = netip.AddrFrom4([4]byte(v[:4]))
		case code == 6:
			for i := 0; i+4 <= l; i += 4 {
				r.dns = append(r.dns, netip.AddrFrom4([4]byte(v[i:i+4])))
			}
		}
		o = o[2+l:]
	}
	if msgType == dhcpNak || msgType != want {
		return nil
	}
	return r
}
