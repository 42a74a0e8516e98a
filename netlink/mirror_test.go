//go:build linux

package netlink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMTUMsg(t *testing.T) {
	m, attrs := parse(t, message(1, unix.RTM_NEWLINK, 0, mtuMsg(5, 1400)))
	if binary.LittleEndian.Uint32(m.Data[4:]) != 5 || len(attrs) != 1 || binary.LittleEndian.Uint32(attrs[unix.IFLA_MTU]) != 1400 {
		t.Fatalf("%v %v", m.Data, attrs)
	}
}

// netNS is a network namespace of the test's own, held by a descriptor:
// nothing is mounted for it, so it goes when the descriptor and every
// socket made in it are closed, or when the test process ends, however
// it ends. The links in it go with it.
type netNS struct {
	name string
	fd   int
}

// newNS makes a network namespace on a locked thread that then returns
// to the test's own namespace.
func newNS(t *testing.T, name string) *netNS {
	t.Helper()
	var fd int
	inThread(t, func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		var err error
		fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	n := &netNS{name: name, fd: fd}
	t.Cleanup(func() { unix.Close(n.fd) })
	return n
}

// do runs f with the calling goroutine's thread in the namespace.
func (n *netNS) do(t *testing.T, f func() error) {
	t.Helper()
	inThread(t, func() error {
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("entering %s: %w", n.name, err)
		}
		if err := f(); err != nil {
			return fmt.Errorf("in %s: %w", n.name, err)
		}
		return nil
	})
}

// inThread runs f on the goroutine's thread, locked, and puts the thread
// back in the namespace it was in; a thread that cannot go back stays
// locked, and Go ends it with the goroutine.
func inThread(t *testing.T, f func() error) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	err = f()
	back := unix.Setns(orig, unix.CLONE_NEWNET)
	unix.Close(orig)
	if back == nil {
		runtime.UnlockOSThread()
	}
	if err != nil || back != nil {
		t.Fatal(errors.Join(err, back))
	}
}

// vethMsg is RTM_NEWLINK's body for a veth pair: name here, peer in the
// namespace of the descriptor peerNS.
func vethMsg(name, peer string, peerNS int) []byte {
	p := ifinfo(0, 0, 0)
	p = append(p, attr(unix.IFLA_IFNAME, append([]byte(peer), 0))...)
	p = append(p, attr(unix.IFLA_NET_NS_FD, u32(uint32(peerNS)))...)
	info := append(attr(unix.IFLA_INFO_KIND, []byte("veth\x00")), attr(unix.IFLA_INFO_DATA, attr(1 /* VETH_INFO_PEER */, p))...)
	b := ifinfo(0, 0, 0)
	b = append(b, attr(unix.IFLA_IFNAME, append([]byte(name), 0))...)
	return append(b, attr(unix.IFLA_LINKINFO, info)...)
}

// ingressQdiscs lists the links of c's namespace that have an ingress
// qdisc (RTM_GETQDISC, as `tc qdisc show` asks).
func ingressQdiscs(c *Conn) ([]int, error) {
	msgs, err := c.dump(unix.RTM_GETQDISC, tcmsg(0, 0, 0, 0))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, m := range msgs {
		if m.typ != unix.RTM_NEWQDISC || len(m.body) < sizeofTcMsg {
			continue
		}
		attrs, err := parseAttrs(m.body[sizeofTcMsg:])
		if err != nil {
			return nil, err
		}
		for _, a := range attrs {
			if a.typ == unix.TCA_KIND && cstring(a.data) == "ingress" {
				out = append(out, int(binary.LittleEndian.Uint32(m.body[4:])))
			}
		}
	}
	return out, nil
}

var (
	addrA   = netip.MustParseAddr("192.0.2.1") // the container's (A's veth's), and so the guest's
	addrB   = netip.MustParseAddr("192.0.2.2") // the other end's: the engine's bridge, or another container
	gateway = netip.MustParseAddr("192.0.2.254")
)

// TestMirror needs root: it makes two network namespaces, A (the
// container's) and B (the network beyond its veth), joined by a veth
// pair with addresses from TEST-NET-1, checks that A's stack answers B's
// ping, and mirrors a tap in A to A's veth. Then the test plays the guest
// on the tap: with the veth's MAC and
// address it resolves B, pings it and reads the replies, and it answers a
// ping from B that A's own stack must not see. Once with the address kept
// on the veth (what Mirror does), once with it removed (what Kata's
// macvtap model does). The host's interfaces are never touched: it checks
// that they are as they were.
func TestMirror(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: making network namespaces, veths and taps needs root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("SKIP: no /dev/net/tun: %v", err)
	}
	host := hostLinks(t)
	for _, keep := range []bool{true, false} {
		name := map[bool]string{true: "the address kept on the veth", false: "the address removed from the veth"}[keep]
		t.Run(name, func(t *testing.T) { testMirror(t, keep) })
	}
	if after := hostLinks(t); !slices.Equal(after, host) {
		t.Fatalf("the host's links changed:\nbefore %v\nafter  %v", host, after)
	}
}

func hostLinks(t *testing.T) []string {
	c, err := Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	links, err := c.Links()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, fmt.Sprintf("%d:%s", l.Index, l.Name))
	}
	return names
}

func testMirror(t *testing.T, keep bool) {
	a, b := newNS(t, "A"), newNS(t, "B")
	var nlA, nlB *Conn
	t.Cleanup(func() {
		for _, c := range []*Conn{nlA, nlB} {
			if c != nil {
				c.Close()
			}
		}
	})
	b.do(t, func() (err error) {
		nlB, err = Dial()
		return err
	})
	a.do(t, func() (err error) {
		nlA, err = Dial()
		return err
	})
	// The engine's work: a veth pair, A's end with an address, an MTU
	// and a default route; B's with the address beside it.
	if err := nlA.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, vethMsg("eth0", "peer0", b.fd)); err != nil {
		t.Fatalf("creating the veth pair: %v", err)
	}
	for _, s := range []struct {
		c    *Conn
		name string
		addr netip.Addr
		gw   bool
	}{{nlA, "eth0", addrA, true}, {nlB, "peer0", addrB, false}} {
		lo, err := s.c.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.c.LinkByName(s.name)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{s.c.LinkUp(lo.Index), s.c.setMTU(l.Index, 1400), s.c.AddAddr(l.Index, s.addr.As4(), 24), s.c.LinkUp(l.Index)} {
			if err != nil {
				t.Fatalf("setting %s up: %v", s.name, err)
			}
		}
		if s.gw {
			if err := s.c.AddDefaultRoute(l.Index, gateway.As4()); err != nil {
				t.Fatal(err)
			}
		}
	}
	peer, err := nlB.LinkByName("peer0")
	if err != nil {
		t.Fatal(err)
	}

	// Before the mirror, A's stack answers B's ping: what the mirror
	// must stop.
	var ping int
	b.do(t, func() (err error) {
		ping, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		return err
	})
	t.Cleanup(func() { unix.Close(ping) })
	if err := unix.SetsockoptTimeval(ping, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 300000}); err != nil {
		t.Fatal(err)
	}
	// (A link that is up passes frames once the kernel's link watcher
	// has seen its carrier, up to a second later.)
	answered := false
	for i := 0; i < 10 && !answered; i++ {
		if err := unix.Sendto(ping, icmpEcho(8, 1, []byte("before")), 0, &unix.SockaddrInet4{Addr: addrA.As4()}); err != nil {
			t.Fatal(err)
		}
		_, answered = readEchoReply(ping, 1)
	}
	if !answered {
		t.Fatal("A's stack did not answer B's ping before the mirror")
	}
	for {
		if _, ok := readEchoReply(ping, 1); !ok { // the late answers to the pings repeated
			break
		}
	}

	// The mirror, and the tap opened as QEMU would open it (without the
	// virtio-net header: the test reads plain frames).
	var m Mirrored
	var tap *os.File
	var undo func()
	a.do(t, func() error {
		var err error
		var remove func()
		m, remove, err = MirrorVeth("ops-tap0")
		undo = sync.OnceFunc(remove)
		t.Cleanup(undo)
		if err != nil {
			return err
		}
		// A second mirror of the same veth is refused, and undoing it
		// leaves the first alone.
		_, remove2, err := MirrorVeth("ops-tap1")
		remove2()
		if err == nil || !strings.Contains(err.Error(), "eth0 has an ingress qdisc already") {
			return fmt.Errorf("a second mirror: %v", err)
		}
		tap, err = openTap("ops-tap0")
		return err
	})
	t.Cleanup(func() { tap.Close() })
	t.Logf("mirrored: %+v", m)
	if m.Name != "eth0" || m.Kind != "veth" || m.Addr != netip.PrefixFrom(addrA, 24) || m.Gateway != gateway || m.MTU != 1400 ||
		len(m.Routes) != 0 || len(m.MAC) != 6 || m.Tap != "ops-tap0" {
		t.Fatalf("mirrored %+v", m)
	}
	tl, err := nlA.LinkByName("ops-tap0")
	if err != nil || tl.Index != m.TapIndex || tl.MTU != 1400 || !tl.Up() || tl.Kind != "tun" {
		t.Fatalf("the tap: %+v, %v", tl, err)
	}
	if _, err := nlA.LinkByName("ops-tap1"); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("the refused mirror's tap: %v", err)
	}
	if q, err := ingressQdiscs(nlA); err != nil || !slices.Equal(q, []int{m.Index, m.TapIndex}) {
		t.Fatalf("ingress qdiscs on %v (eth0 is %d, the tap %d): %v", q, m.Index, m.TapIndex, err)
	}
	if !keep {
		if err := nlA.request(unix.RTM_DELADDR, 0, addrMsg(m.Index, addrA.As4(), 24)); err != nil {
			t.Fatalf("removing eth0's address: %v", err)
		}
	}
	g := &guest{t: t, tap: tap}

	// The guest resolves B and pings it: its frames leave through A's
	// veth, B's replies come back to the tap.
	g.send(arpFrame(1, m.MAC, addrA, nil, addrB))
	reply := g.read("B's ARP reply", func(f frame) bool {
		return f.arpOp == 2 && f.arpSender == addrB && f.arpTarget == addrA && bytes.Equal(f.dst, m.MAC)
	})
	if !bytes.Equal(reply.arpSenderMAC, peer.MAC) {
		t.Fatalf("B answered with MAC %s, its veth's is %s", net.HardwareAddr(reply.arpSenderMAC), peer.MAC)
	}
	g.send(icmpFrame(peer.MAC, m.MAC, addrA, addrB, 8, 1, []byte("from the guest")))
	g.read("B's echo reply", func(f frame) bool {
		return f.icmpType == 0 && f.src4 == addrB && f.dst4 == addrA && f.icmpSeq == 1 && string(f.icmpData) == "from the guest"
	})

	// B pings A's address: the request reaches the tap, and A's own
	// stack, which still holds the address when it is kept, does not
	// answer; the guest's answer reaches B.
	if err := unix.Sendto(ping, icmpEcho(8, 2, []byte("from B")), 0, &unix.SockaddrInet4{Addr: addrA.As4()}); err != nil {
		t.Fatal(err)
	}
	req := g.read("B's echo request", func(f frame) bool {
		if f.arpOp == 1 && f.arpTarget == addrA { // B asks for the guest's MAC
			g.send(arpFrame(2, m.MAC, addrA, f.arpSenderMAC, f.arpSender))
			return false
		}
		return f.icmpType == 8 && f.src4 == addrB && f.dst4 == addrA && f.icmpSeq == 2
	})
	if r, ok := readEchoReply(ping, 2); ok {
		t.Fatalf("B got an echo reply that is not the guest's: %q", r)
	}
	g.send(icmpFrame(req.src, m.MAC, addrA, addrB, 0, 2, req.icmpData))
	if r, ok := readEchoReply(ping, 2); !ok || string(r) != "from B" {
		t.Fatalf("B did not get the guest's echo reply (%q)", r)
	}
	t.Logf("frames not asked for, read from the tap: %s", strings.Join(g.other, "; "))

	// A relay's address, which B has too: Pass keeps the guest's frames
	// for it (ARP asking for it, IPv4 to it) from the redirect, so B sees
	// none of them, and ListenPassed's socket in A reads them and nothing
	// else; the guest's other frames still reach B.
	relay := netip.MustParseAddr("169.254.53.53")
	if err := nlB.AddAddr(peer.Index, relay.As4(), 32); err != nil {
		t.Fatal(err)
	}
	var passed *os.File
	var udpB int
	a.do(t, func() (err error) {
		if err := nlA.Pass(m.TapIndex, relay); err != nil {
			return err
		}
		passed, err = ListenPassed(m.TapIndex, relay)
		return err
	})
	t.Cleanup(func() { passed.Close() })
	b.do(t, func() (err error) {
		if udpB, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(udpB, &unix.SockaddrInet4{Addr: relay.As4(), Port: 53})
	})
	t.Cleanup(func() { unix.Close(udpB) })
	readPassed := func(what string) frame {
		t.Helper()
		passed.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 65536)
		n, err := passed.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s on the packet socket: %v", what, err)
		}
		return parseFrame(append([]byte(nil), buf[:n]...))
	}
	g.send(arpFrame(1, m.MAC, addrA, nil, relay))
	if f := readPassed("the guest's ARP request"); f.arpOp != 1 || f.arpTarget != relay {
		t.Fatalf("read %s", f)
	}
	query := udpFrame(peer.MAC, m.MAC, addrA, relay, 40000, 53, []byte("a query"))
	g.send(query)
	if f := readPassed("the guest's query"); f.dst4 != relay || f.proto != unix.IPPROTO_UDP {
		t.Fatalf("read %s", f)
	}
	if err := unix.SetsockoptTimeval(udpB, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 300000}); err != nil {
		t.Fatal(err)
	}
	if n, _, err := unix.Recvfrom(udpB, make([]byte, 100), 0); err == nil {
		t.Fatalf("B got the query (%d bytes)", n)
	}
	g.send(icmpFrame(peer.MAC, m.MAC, addrA, addrB, 8, 3, []byte("past the pass")))
	g.read("B's echo reply past the passes", func(f frame) bool {
		if f.arpOp == 2 && f.arpSender == relay {
			t.Fatal("B answered ARP for the relay's address")
		}
		return f.icmpType == 0 && f.src4 == addrB && f.icmpSeq == 3
	})
	passed.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := passed.Read(make([]byte, 65536)); err == nil {
		t.Fatalf("the packet socket read a frame not for the relay: %s", parseFrame(make([]byte, n)))
	}

	// The guest holds the tap: another VM may not take the veth. Once it
	// lets go (a VM killed with its supervisor), the tap is a leftover,
	// which Unmirror removes with the veth's qdisc when the veth keeps
	// its address (what the runtime does); else the mirror's own undo.
	if exists, held, err := nlA.TapHeld("ops-tap0"); err != nil || !exists || !held {
		t.Fatalf("the guest's tap: exists %v, held %v, %v", exists, held, err)
	}
	tap.Close()
	if exists, held, err := nlA.TapHeld("ops-tap0"); err != nil || !exists || held {
		t.Fatalf("the tap let go: exists %v, held %v, %v", exists, held, err)
	}
	if exists, _, err := nlA.TapHeld("ops-tap9"); err != nil || exists {
		t.Fatalf("no tap: exists %v, %v", exists, err)
	}
	if keep {
		if err := nlA.Unmirror("ops-tap0", "eth0"); err != nil {
			t.Fatalf("Unmirror: %v", err)
		}
		if err := nlA.Unmirror("ops-tap0", "eth0"); err != nil {
			t.Fatalf("Unmirror again: %v", err)
		}
	}

	// Undone: no tap, no qdisc, the veth as it was.
	undo()
	if _, err := nlA.LinkByName("ops-tap0"); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("the tap after remove: %v", err)
	}
	if q, err := ingressQdiscs(nlA); err != nil || len(q) != 0 {
		t.Fatalf("ingress qdiscs after remove on %v: %v", q, err)
	}
	v, err := nlA.Veth()
	if keep && (err != nil || v.Name != "eth0" || v.Addr != m.Addr || v.Gateway != gateway || !v.Up()) {
		t.Fatalf("eth0 after remove: %+v, %v", v, err)
	}
}

// TestLinksInNamespace: a Links opened in a namespace makes and removes
// its bridge and tap there, finding them through its netlink socket
// (sysfs still shows the test's own namespace).
func TestLinksInNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: making a network namespace, a bridge and a tap needs root")
	}
	host := hostLinks(t)
	n := newNS(t, "A")
	n.do(t, func() error {
		l, err := OpenLinks()
		if err != nil {
			return err
		}
		remove := sync.OnceFunc(l.Remove)
		defer remove()
		bi, err := l.Bridge("ops-br0")
		if err != nil {
			return err
		}
		ti, err := l.Tap("ops-tap0")
		if err != nil {
			return err
		}
		if err := l.Attach(ti, bi); err != nil {
			return err
		}
		if again, err := l.Tap("ops-tap0"); err != nil || again != ti {
			return fmt.Errorf("the tap again: %d, %v; want %d", again, err, ti)
		}
		for _, name := range []string{"ops-br0", "ops-tap0"} {
			if _, err := IfIndex(name); err == nil {
				return fmt.Errorf("%s shows in the host's sysfs", name)
			}
		}
		remove()
		c, err := Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		for _, name := range []string{"ops-br0", "ops-tap0"} {
			if _, err := c.LinkByName(name); !errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("%s after Remove: %v", name, err)
			}
		}
		return nil
	})
	if after := hostLinks(t); !slices.Equal(after, host) {
		t.Fatalf("the host's links changed:\nbefore %v\nafter  %v", host, after)
	}
}

// openTap attaches to a tap device as QEMU does, without the virtio-net
// header, so reads and writes are plain Ethernet frames.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attaching to tap %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tap "+name), nil // non-blocking: reads take deadlines
}

// guest plays the VM on the tap.
type guest struct {
	t     *testing.T
	tap   *os.File
	other []string // frames read that were not those waited for
}

func (g *guest) send(f []byte) {
	g.t.Helper()
	if _, err := g.tap.Write(f); err != nil {
		g.t.Fatalf("writing to the tap: %v", err)
	}
}

// read reads frames from the tap until one matches, for 5 seconds.
func (g *guest) read(what string, match func(frame) bool) frame {
	g.t.Helper()
	g.tap.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	for {
		n, err := g.tap.Read(buf)
		if err != nil {
			g.t.Fatalf("waiting for %s on the tap: %v (read meanwhile: %s)", what, err, strings.Join(g.other, "; "))
		}
		f := parseFrame(append([]byte(nil), buf[:n]...))
		if match(f) {
			return f
		}
		g.other = append(g.other, f.String())
	}
}

// frame is what the test reads of an Ethernet frame.
type frame struct {
	dst, src  net.HardwareAddr
	etherType uint16

	arpOp                uint16
	arpSenderMAC         net.HardwareAddr
	arpSender, arpTarget netip.Addr
	src4, dst4           netip.Addr
	proto                byte
	icmpType             byte
	icmpID, icmpSeq      uint16
	icmpData             []byte
}

func parseFrame(b []byte) frame {
	var f frame
	if len(b) < 14 {
		return f
	}
	f.dst, f.src, f.etherType = b[0:6], b[6:12], binary.BigEndian.Uint16(b[12:])
	p := b[14:]
	switch f.etherType {
	case unix.ETH_P_ARP:
		if len(p) >= 28 {
			f.arpOp = binary.BigEndian.Uint16(p[6:])
			f.arpSenderMAC = p[8:14]
			f.arpSender = netip.AddrFrom4([4]byte(p[14:18]))
			f.arpTarget = netip.AddrFrom4([4]byte(p[24:28]))
		}
	case unix.ETH_P_IP:
		if len(p) >= 20 && p[0]>>4 == 4 {
			ihl := int(p[0]&15) * 4
			f.proto = p[9]
			f.src4 = netip.AddrFrom4([4]byte(p[12:16]))
			f.dst4 = netip.AddrFrom4([4]byte(p[16:20]))
			if f.proto == unix.IPPROTO_ICMP && len(p) >= ihl+8 {
				f.icmpType, f.icmpID, f.icmpSeq, f.icmpData = parseICMP(p[ihl:])
			} else {
				f.icmpType = 255
			}
		}
	}
	return f
}

func parseICMP(b []byte) (typ byte, id, seq uint16, data []byte) {
	return b[0], binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]), b[8:]
}

func (f frame) String() string {
	switch {
	case f.arpOp != 0:
		return fmt.Sprintf("ARP %d %s (%s) asks for / tells %s", f.arpOp, f.arpSender, f.arpSenderMAC, f.arpTarget)
	case f.src4.IsValid():
		return fmt.Sprintf("IPv4 %s > %s proto %d type %d", f.src4, f.dst4, f.proto, f.icmpType)
	}
	return fmt.Sprintf("%s > %s type %#04x", f.src, f.dst, f.etherType)
}

// arpFrame is an ARP request (op 1, to everyone) or reply (op 2, to
// targetMAC) from mac and addr about target.
func arpFrame(op uint16, mac net.HardwareAddr, addr netip.Addr, targetMAC net.HardwareAddr, target netip.Addr) []byte {
	dst := targetMAC
	if op == 1 {
		dst, targetMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, make(net.HardwareAddr, 6)
	}
	p := make([]byte, 28)
	binary.BigEndian.PutUint16(p[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(p[2:], 0x0800) // IPv4
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], op)
	a, ta := addr.As4(), target.As4()
	copy(p[8:], mac)
	copy(p[14:], a[:])
	copy(p[18:], targetMAC)
	copy(p[24:], ta[:])
	return ethFrame(dst, mac, unix.ETH_P_ARP, p)
}

func ethFrame(dst, src net.HardwareAddr, typ uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b, dst)
	copy(b[6:], src)
	binary.BigEndian.PutUint16(b[12:], typ)
	return append(b, payload...)
}

const icmpID = 0x4f50

// icmpEcho is an ICMP echo request (8) or reply (0) of the test's.
func icmpEcho(typ byte, seq uint16, data []byte) []byte {
	b := make([]byte, 8, 8+len(data))
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], icmpID)
	binary.BigEndian.PutUint16(b[6:], seq)
	b = append(b, data...)
	binary.BigEndian.PutUint16(b[2:], checksum(b))
	return b
}

// icmpFrame is icmpEcho in an IPv4 packet in an Ethernet frame.
// udpFrame is an Ethernet frame with an IPv4 UDP datagram (checksum 0:
// none).
func udpFrame(dst, src net.HardwareAddr, from, to netip.Addr, sport, dport uint16, data []byte) []byte {
	u := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(data)))
	u = append(u, data...)
	return ethFrame(dst, src, unix.ETH_P_IP, ipv4Packet(from, to, unix.IPPROTO_UDP, u))
}

func icmpFrame(dst, src net.HardwareAddr, from, to netip.Addr, typ byte, seq uint16, data []byte) []byte {
	return ethFrame(dst, src, unix.ETH_P_IP, ipv4Packet(from, to, unix.IPPROTO_ICMP, icmpEcho(typ, seq, data)))
}

// ipv4Packet is payload in an IPv4 packet of protocol proto.
func ipv4Packet(from, to netip.Addr, proto byte, payload []byte) []byte {
	ip := make([]byte, 20, 20+len(payload))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(payload)))
	ip[8], ip[9] = 64, proto
	f, t := from.As4(), to.As4()
	copy(ip[12:], f[:])
	copy(ip[16:], t[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	return append(ip, payload...)
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// readEchoReply reads the test's echo reply seq from a raw ICMP socket
// (an IPv4 header, then ICMP), until the socket's receive timeout.
func readEchoReply(fd int, seq uint16) ([]byte, bool) {
	buf := make([]byte, 2048)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, false
		}
		p := buf[:n]
		if len(p) < 20 || len(p) < int(p[0]&15)*4+8 {
			continue
		}
		if typ, id, s, data := parseICMP(p[int(p[0]&15)*4:]); typ == 0 && id == icmpID && s == seq {
			return append([]byte(nil), data...), true
		}
	}
}
