//go:build linux

package netlink

import (
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// ListenPassed opens a packet socket on link index that reads the frames
// arriving there for addr, the IPv4 packets to it and ARP asking for it
// (what Pass keeps from a mirror's redirect), whole, from the Ethernet
// header on; what is written to it goes out of the link as it is. A
// packet socket sees a link's frames before its ingress filters, so the
// redirect takes nothing from it. The file is non-blocking (its reads
// take deadlines, and Close ends a read that waits).
func ListenPassed(index int, addr netip.Addr) (*os.File, error) {
	if !addr.Is4() {
		return nil, fmt.Errorf("a packet socket for %s: not an IPv4 address", addr)
	}
	// Protocol 0: nothing is queued before the filter is there and the
	// socket is bound.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	prog := passedFilter(addr)
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("packet socket filter: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding a packet socket to link %d: %w", index, err)
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("packet socket on link %d for %s", index, addr)), nil
}

// Ancillary data a classic BPF program loads (linux/filter.h).
const (
	skfAdOff     = 0xfffff000 // SKF_AD_OFF, -0x1000
	skfAdPktType = 4          // SKF_AD_PKTTYPE
)

// passedFilter is the socket's classic BPF program: it keeps frames
// coming in (not those the link sends) that are ARP with addr as the
// target protocol address, or IPv4 with addr as the destination.
func passedFilter(addr netip.Addr) []unix.SockFilter {
	a := addr.As4()
	want := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	const (
		ldW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		ldH  = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ja   = unix.BPF_JMP | unix.BPF_JA
		retK = unix.BPF_RET | unix.BPF_K
	)
	// Jumps count the instructions skipped.
	return []unix.SockFilter{
		/* 0 */ {Code: ldW, K: skfAdOff + skfAdPktType},
		/* 1 */ {Code: jeq, K: unix.PACKET_OUTGOING, Jt: 7}, // -> 9, drop
		/* 2 */ {Code: ldH, K: 12}, // the EtherType
		/* 3 */ {Code: jeq, K: unix.ETH_P_ARP, Jf: 2}, // -> 6 unless ARP
		/* 4 */ {Code: ldW, K: 14 + arpTargetOffset},
		/* 5 */ {Code: ja, K: 2}, // -> 8
		/* 6 */ {Code: jeq, K: unix.ETH_P_IP, Jf: 2}, // -> 9 unless IPv4
		/* 7 */ {Code: ldW, K: 14 + ipDstOffset},
		/* 8 */ {Code: jeq, K: want, Jt: 1}, // -> 10
		/* 9 */ {Code: retK, K: 0},
		/* 10 */ {Code: retK, K: 0xffff},
	}
}
