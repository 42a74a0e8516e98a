//go:build linux

package netlink

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Traffic control, the little a mirror needs: an ingress qdisc on a link
// and, on it, a u32 filter that matches every frame with a mirred action
// that sends it out of another link. The messages are those iproute2's tc
// sends (TestTCMessages holds its bytes) for
//
//	tc qdisc add dev X ingress
//	tc filter add dev X parent ffff: protocol all prio 3 u32 match u8 0 0 action mirred egress redirect dev Y
//	tc qdisc del dev X ingress
//
// and, ahead of the redirect, for what a process in the namespace answers
// itself in the VM's place (Pass):
//
//	tc filter add dev X parent ffff: protocol ip prio 1 u32 match ip dst A/32 classid :1
//	tc filter add dev X parent ffff: protocol arp prio 2 u32 match u32 A 0xffffffff at 24 classid :1
//
// Values from the kernel's uapi headers (linux/pkt_sched.h, pkt_cls.h,
// tc_act/tc_mirred.h), which golang.org/x/sys does not carry.
const (
	tcHIngress    = 0xfffffff1 // TC_H_INGRESS: the parent of an ingress qdisc
	ingressHandle = 0xffff0000 // ffff:, the ingress qdisc's handle and its filters' parent

	tcaU32ClassID = 1 // TCA_U32_CLASSID: makes a match final without an action
	tcaU32Sel     = 5 // TCA_U32_SEL: struct tc_u32_sel
	tcaU32Act     = 7 // TCA_U32_ACT: the actions, one nested attribute each, numbered from 1

	tcaActKind    = 1 // TCA_ACT_KIND
	tcaActOptions = 2 // TCA_ACT_OPTIONS

	tcaMirredParms = 2 // TCA_MIRRED_PARMS: struct tc_mirred
	tcActStolen    = 4 // TC_ACT_STOLEN: the frame is the action's, nothing else sees it
	tcaEgressRedir = 1 // TCA_EGRESS_REDIR: out of the target link, not a copy

	tcU32Terminal = 1 // TC_U32_TERMINAL: a match ends the search

	// The filters' priorities, the lowest tried first: the passes for a
	// relay's address (IPv4 to it, ARP asking for it), then the redirect
	// of everything else.
	passIPPrio   = 1
	passARPPrio  = 2
	redirectPrio = 3

	// Where a pass filter looks, from the network header: an IPv4
	// header's destination, an ARP packet's target protocol address.
	ipDstOffset     = 16
	arpTargetOffset = 24

	sizeofTcMsg = 20
)

// tcmsg is a struct tcmsg: family (AF_UNSPEC), padding, the link's index,
// handle, parent and info.
func tcmsg(index int, handle, parent, info uint32) []byte {
	b := make([]byte, sizeofTcMsg)
	binary.LittleEndian.PutUint32(b[4:], uint32(index))
	binary.LittleEndian.PutUint32(b[8:], handle)
	binary.LittleEndian.PutUint32(b[12:], parent)
	binary.LittleEndian.PutUint32(b[16:], info)
	return b
}

// ingressMsg is the body of RTM_NEWQDISC and RTM_DELQDISC for a link's
// ingress qdisc.
func ingressMsg(index int) []byte {
	return append(tcmsg(index, ingressHandle, tcHIngress, 0), attr(unix.TCA_KIND, []byte("ingress\x00"))...)
}

// redirectMsg is the body of RTM_NEWTFILTER for a filter on from's
// ingress qdisc that sends every frame out of to: protocol all, a u32
// selector with one key matching everything, and one mirred action.
func redirectMsg(from, to int) []byte {
	// info: the priority in the upper 16 bits, the protocol (ETH_P_ALL
	// in network byte order) in the lower.
	b := tcmsg(from, 0, ingressHandle, redirectPrio<<16|uint32(htons(unix.ETH_P_ALL)))
	b = append(b, attr(unix.TCA_KIND, []byte("u32\x00"))...)

	// struct tc_mirred: struct tc_gen (index, capab, action, refcnt,
	// bindcnt), then eaction and ifindex.
	mirred := make([]byte, 28)
	binary.LittleEndian.PutUint32(mirred[8:], tcActStolen)
	binary.LittleEndian.PutUint32(mirred[20:], tcaEgressRedir)
	binary.LittleEndian.PutUint32(mirred[24:], uint32(to))
	action := append(attr(tcaActKind, []byte("mirred\x00")),
		attr(tcaActOptions|unix.NLA_F_NESTED, attr(tcaMirredParms, mirred))...)

	// struct tc_u32_sel (flags, offshift, nkeys, pad, offmask, off,
	// offoff, hoff, hmask) and its one struct tc_u32_key (mask, val,
	// off, offmask): mask 0 matches every frame.
	sel := make([]byte, 16+16)
	sel[0] = tcU32Terminal
	sel[2] = 1

	options := append(attr(tcaU32Act, attr(1, action)), attr(tcaU32Sel, sel)...)
	return append(b, attr(unix.TCA_OPTIONS, options)...)
}

// passMsg is the body of RTM_NEWTFILTER for a filter on a link's
// ingress qdisc, at priority prio for protocol proto (host byte order),
// that matches the four bytes at off (from the network header) equal to
// val and has no action but a class: a frame it matches goes on to the
// namespace's own stack instead of the filters behind it (a packet socket
// on the link has seen it before any filter).
func passMsg(index int, prio, proto uint16, off uint32, val [4]byte) []byte {
	b := tcmsg(index, 0, ingressHandle, uint32(prio)<<16|uint32(htons(proto)))
	b = append(b, attr(unix.TCA_KIND, []byte("u32\x00"))...)
	// struct tc_u32_sel, terminal, and one struct tc_u32_key: mask
	// 0xffffffff, val, off.
	sel := make([]byte, 16+16)
	sel[0] = tcU32Terminal
	sel[2] = 1
	binary.BigEndian.PutUint32(sel[16:], 0xffffffff)
	copy(sel[20:], val[:])
	binary.LittleEndian.PutUint32(sel[24:], off)
	options := append(attr(tcaU32ClassID, u32(1)), attr(tcaU32Sel, sel)...)
	return append(b, attr(unix.TCA_OPTIONS, options)...)
}

// addIngress adds an ingress qdisc to a link; one there already is
// unix.EEXIST.
func (c *Conn) addIngress(index int) error {
	return c.request(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_EXCL, ingressMsg(index))
}

// delIngress removes a link's ingress qdisc, and its filters with it.
func (c *Conn) delIngress(index int) error {
	return c.request(unix.RTM_DELQDISC, 0, ingressMsg(index))
}

// addRedirect adds the filter of redirectMsg to from's ingress qdisc.
func (c *Conn) addRedirect(from, to int) error {
	return c.request(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_EXCL, redirectMsg(from, to))
}

// Pass keeps from a mirror's redirect, on link index's ingress (a VM's
// tap), the frames for addr: IPv4 packets to it and ARP asking for it.
// They go to the namespace's own stack, which drops them (addr is none of
// its addresses), and not out of the veth: a process in the namespace
// answers them in the VM's place through a packet socket on the link,
// which sees every frame before the filters. The filters go with the
// link's ingress qdisc.
func (c *Conn) Pass(index int, addr netip.Addr) error {
	if !addr.Is4() {
		return fmt.Errorf("passing %s: not an IPv4 address", addr)
	}
	for _, f := range []struct {
		what        string
		prio, proto uint16
		off         uint32
	}{{"IPv4 to", passIPPrio, unix.ETH_P_IP, ipDstOffset}, {"ARP for", passARPPrio, unix.ETH_P_ARP, arpTargetOffset}} {
		if err := c.request(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_EXCL, passMsg(index, f.prio, f.proto, f.off, addr.As4())); err != nil {
			return fmt.Errorf("a filter keeping %s %s from the redirect: %w", f.what, addr, err)
		}
	}
	return nil
}
