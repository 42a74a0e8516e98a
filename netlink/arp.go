//go:build linux

package netlink

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Announce sends one gratuitous ARP request for addr from the interface
// (who-has addr tell addr, to everyone). A guest with a static address
// says nothing until it needs to, and a user-mode network like passt
// learns the guest's MAC address from the first frame it sends: until
// then, a connection forwarded to the guest cannot reach it. Bridges and
// switches learn the address the same way.
func Announce(ifindex int, mac []byte, addr netip.Addr) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifindex, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	return unix.Sendto(fd, arpAnnouncement(mac, addr), 0, to)
}

// arpAnnouncement is the ARP payload of a gratuitous request.
func arpAnnouncement(mac []byte, addr netip.Addr) []byte {
	a := addr.As4()
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(b[2:], 0x0800) // IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], 1) // request
	copy(b[8:14], mac)
	copy(b[14:18], a[:])
	copy(b[24:28], a[:]) // the target hardware address stays zero
	return b
}
