//go:build linux

package netlink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAttr(t *testing.T) {
	for _, tc := range []struct {
		data []byte
		want []byte // length and type (little-endian u16 each), data, zeros to 4 bytes
	}{
		{nil, []byte{4, 0, 9, 0}},
		{[]byte{1}, []byte{5, 0, 9, 0, 1, 0, 0, 0}},
		{[]byte{1, 2, 3, 4}, []byte{8, 0, 9, 0, 1, 2, 3, 4}},
		{[]byte("br0\x00x"), []byte{9, 0, 9, 0, 'b', 'r', '0', 0, 'x', 0, 0, 0}},
	} {
		if got := attr(9, tc.data); !bytes.Equal(got, tc.want) {
			t.Errorf("attr(9, %v) = %v, want %v", tc.data, got, tc.want)
		}
	}
	if got := u32(0x01020304); !bytes.Equal(got, []byte{4, 3, 2, 1}) {
		t.Errorf("u32: %v", got)
	}
	if htons(unix.ETH_P_ARP) != 0x0608 || htons(unix.ETH_P_IP) != 0x0008 {
		t.Errorf("htons: %#x %#x", htons(unix.ETH_P_ARP), htons(unix.ETH_P_IP))
	}
}

// parse reads a request back with the standard library's netlink parser,
// which knows each message type's fixed header: the message and its
// attributes by type.
func parse(t *testing.T, msg []byte) (syscall.NetlinkMessage, map[uint16][]byte) {
	t.Helper()
	msgs, err := syscall.ParseNetlinkMessage(msg)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(&msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	byType := map[uint16][]byte{}
	for _, a := range attrs {
		if _, dup := byType[a.Attr.Type]; dup {
			t.Fatalf("attribute %d twice", a.Attr.Type)
		}
		byType[a.Attr.Type] = a.Value
	}
	return msgs[0], byType
}

func TestMessage(t *testing.T) {
	body := ifinfo(3, unix.IFF_UP, unix.IFF_UP)
	msg := message(7, unix.RTM_NEWLINK, unix.NLM_F_CREATE, body)
	m, attrs := parse(t, msg)
	h := m.Header
	if h.Len != uint32(len(msg)) || h.Type != unix.RTM_NEWLINK || h.Seq != 7 ||
		h.Flags != unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE || !bytes.Equal(m.Data, body) || len(attrs) != 0 {
		t.Fatalf("header %+v, data %v, attributes %v", h, m.Data, attrs)
	}
	// The body is a struct ifinfomsg: family, index, flags, change mask.
	if body[0] != unix.AF_UNSPEC || binary.LittleEndian.Uint32(body[4:]) != 3 ||
		binary.LittleEndian.Uint32(body[8:]) != unix.IFF_UP || binary.LittleEndian.Uint32(body[12:]) != unix.IFF_UP {
		t.Fatalf("ifinfomsg %v", body)
	}
}

func TestRequestBodies(t *testing.T) {
	ip := [4]byte{10, 0, 2, 15}
	t.Run("address", func(t *testing.T) {
		m, attrs := parse(t, message(1, unix.RTM_NEWADDR, 0, addrMsg(2, ip, 24)))
		if d := m.Data; d[0] != unix.AF_INET || d[1] != 24 || binary.LittleEndian.Uint32(d[4:]) != 2 {
			t.Errorf("ifaddrmsg %v", d[:unix.SizeofIfAddrmsg])
		}
		if len(attrs) != 2 || !bytes.Equal(attrs[unix.IFA_LOCAL], ip[:]) || !bytes.Equal(attrs[unix.IFA_ADDRESS], ip[:]) {
			t.Errorf("attributes %v", attrs)
		}
	})
	for _, tc := range []struct {
		name  string
		gw    []byte
		scope byte
	}{
		{"route through a gateway", []byte{10, 0, 2, 2}, unix.RT_SCOPE_UNIVERSE},
		{"route out of the link", nil, unix.RT_SCOPE_LINK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, attrs := parse(t, message(1, unix.RTM_NEWROUTE, 0, routeMsg(5, tc.gw)))
			d := m.Data
			// rtmsg: family, dst and src prefix lengths (0: default), tos,
			// table, protocol, scope, type.
			if want := []byte{unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, tc.scope, unix.RTN_UNICAST}; !bytes.Equal(d[:8], want) {
				t.Errorf("rtmsg %v, want %v", d[:8], want)
			}
			if !bytes.Equal(attrs[unix.RTA_OIF], []byte{5, 0, 0, 0}) || !bytes.Equal(attrs[unix.RTA_GATEWAY], tc.gw) || len(attrs) != 1+min(len(tc.gw), 1) {
				t.Errorf("attributes %v", attrs)
			}
		})
	}
	t.Run("bridge", func(t *testing.T) {
		m, attrs := parse(t, message(1, unix.RTM_NEWLINK, 0, bridgeMsg("br0")))
		if !bytes.Equal(m.Data[:unix.SizeofIfInfomsg], make([]byte, unix.SizeofIfInfomsg)) {
			t.Errorf("ifinfomsg %v", m.Data[:unix.SizeofIfInfomsg])
		}
		kind := []byte{11, 0, unix.IFLA_INFO_KIND, 0, 'b', 'r', 'i', 'd', 'g', 'e', 0, 0}
		if len(attrs) != 2 || string(attrs[unix.IFLA_IFNAME]) != "br0\x00" || !bytes.Equal(attrs[unix.IFLA_LINKINFO], kind) {
			t.Errorf("attributes %v", attrs)
		}
	})
}

// kernelAck is the kernel's reply to request seq: an nlmsgerr, the error
// number negated (0 for success), then the request's header.
func kernelAck(seq uint32, errno syscall.Errno) []byte {
	b := make([]byte, 16+4+16)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	binary.LittleEndian.PutUint16(b[4:], unix.NLMSG_ERROR)
	binary.LittleEndian.PutUint32(b[8:], seq)
	binary.LittleEndian.PutUint32(b[16:], uint32(-int32(errno)))
	return b
}

func TestAck(t *testing.T) {
	other := message(9, unix.RTM_NEWLINK, 0, ifinfo(1, 0, 0)) // a message that is no acknowledgement
	for _, tc := range []struct {
		name  string
		reply []byte
		done  bool
		err   error
	}{
		{"success", kernelAck(4, 0), true, nil},
		{"an error", kernelAck(4, unix.EEXIST), true, unix.EEXIST},
		{"another request's", kernelAck(3, unix.EPERM), false, nil},
		{"no acknowledgement", other, false, nil},
		{"after another message", append(append([]byte{}, other...), kernelAck(4, unix.ENODEV)...), true, unix.ENODEV},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := syscall.ParseNetlinkMessage(tc.reply)
			if err != nil {
				t.Fatal(err)
			}
			done, err := ack(msgs, 4)
			if done != tc.done || (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Fatalf("done %v, err %v; want %v, %v", done, err, tc.done, tc.err)
			}
		})
	}
	short := []syscall.NetlinkMessage{{Header: syscall.NlMsghdr{Type: unix.NLMSG_ERROR, Seq: 4}, Data: []byte{0, 0}}}
	if done, err := ack(short, 4); !done || err == nil || !strings.Contains(err.Error(), "short") {
		t.Fatalf("short error message: done %v, err %v", done, err)
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"tap0": true, "br-ops": true, "fifteen-chars-x": true,
		"": false, "sixteen-chars-xx": false, "a/b": false, "a b": false, "a\x00b": false,
	} {
		if err := checkName(name); (err == nil) != ok {
			t.Errorf("checkName(%q): %v", name, err)
		}
	}
}

func TestBridgePrefix(t *testing.T) {
	for _, tc := range []struct{ ip, netmask, want string }{
		{"10.3.0.1/16", "", "10.3.0.1/16"},
		{"10.3.0.1/16", "255.255.255.0", "10.3.0.1/16"}, // the prefix written wins
		{"10.3.0.1", "", "10.3.0.1/24"},
		{"10.3.0.1", "255.255.0.0", "10.3.0.1/16"},
		{"10.3.0.1", "255.255.255.252", "10.3.0.1/30"},
		{"10.3.0.1", "bogus", "error: --netmask"},
		{"10.3.0.1", "ffff:ffff::", "error: --netmask"},
		{"fe80::1/64", "", "error: --bridgeipaddress"},
		{"10.3.0.1/33", "", "error: --bridgeipaddress"},
		{"br0", "", "error: --bridgeipaddress"},
	} {
		p, err := bridgePrefix(tc.ip, tc.netmask)
		got := p.String()
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("bridgePrefix(%q, %q) = %s, want %s", tc.ip, tc.netmask, got, tc.want)
		}
	}
}

func TestPrivilegeHint(t *testing.T) {
	for _, errno := range []syscall.Errno{unix.EPERM, unix.EACCES} {
		err := privilegeHint(errors.Join(errors.New("creating bridge br0"), errno))
		if !errors.Is(err, errno) || !strings.Contains(err.Error(), "needs root") {
			t.Errorf("%v: %v", errno, err)
		}
	}
	if err := privilegeHint(unix.EEXIST); err != unix.EEXIST {
		t.Errorf("EEXIST became %v", err)
	}
	if err := privilegeHint(nil); err != nil {
		t.Errorf("nil became %v", err)
	}
}
