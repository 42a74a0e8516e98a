//go:build linux

package netlink

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tcSent is what iproute2's tc (6.1) sent the kernel, read with
// `strace -e trace=sendmsg -e write=3`, in a namespace where v0 is link 3
// and tap0 link 4. tc numbers its request 0x6b150d35.
var tcSent = []struct {
	command string
	typ     uint16
	flags   uint16
	body    []byte
	hex     string
}{
	{"tc qdisc add dev v0 ingress", unix.RTM_NEWQDISC, unix.NLM_F_CREATE | unix.NLM_F_EXCL, ingressMsg(3), `
		30 00 00 00 24 00 05 06  35 0d 15 6b 00 00 00 00
		00 00 00 00 03 00 00 00  00 00 ff ff f1 ff ff ff
		00 00 00 00 0c 00 01 00  69 6e 67 72 65 73 73 00`},
	{"tc filter add dev v0 parent ffff: protocol all prio 3 u32 match u8 0 0 action mirred egress redirect dev tap0",
		unix.RTM_NEWTFILTER, unix.NLM_F_CREATE | unix.NLM_F_EXCL, redirectMsg(3, 4), `
		8c 00 00 00 2c 00 05 06  35 0d 15 6b 00 00 00 00
		00 00 00 00 03 00 00 00  00 00 00 00 00 00 ff ff
		00 03 03 00 08 00 01 00  75 33 32 00 60 00 02 00
		38 00 07 00 34 00 01 00  0b 00 01 00 6d 69 72 72
		65 64 00 00 24 00 02 80  20 00 02 00 00 00 00 00
		00 00 00 00 04 00 00 00  00 00 00 00 00 00 00 00
		01 00 00 00 04 00 00 00  24 00 05 00 01 00 01 00
		00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
		00 00 00 00 00 00 00 00  00 00 00 00`},
	{"tc filter add dev v0 parent ffff: protocol ip prio 1 u32 match ip dst 169.254.53.53/32 classid :1",
		unix.RTM_NEWTFILTER, unix.NLM_F_CREATE | unix.NLM_F_EXCL, passMsg(3, passIPPrio, unix.ETH_P_IP, ipDstOffset, [4]byte{169, 254, 53, 53}), `
		5c 00 00 00 2c 00 05 06  35 0d 15 6b 00 00 00 00
		00 00 00 00 03 00 00 00  00 00 00 00 00 00 ff ff
		08 00 01 00 08 00 01 00  75 33 32 00 30 00 02 00
		08 00 01 00 01 00 00 00  24 00 05 00 01 00 01 00
		00 00 00 00 00 00 00 00  00 00 00 00 ff ff ff ff
		a9 fe 35 35 10 00 00 00  00 00 00 00`},
	{"tc filter add dev v0 parent ffff: protocol arp prio 2 u32 match u32 0xa9fe3535 0xffffffff at 24 classid :1",
		unix.RTM_NEWTFILTER, unix.NLM_F_CREATE | unix.NLM_F_EXCL, passMsg(3, passARPPrio, unix.ETH_P_ARP, arpTargetOffset, [4]byte{169, 254, 53, 53}), `
		5c 00 00 00 2c 00 05 06  35 0d 15 6b 00 00 00 00
		00 00 00 00 03 00 00 00  00 00 00 00 00 00 ff ff
		08 06 02 00 08 00 01 00  75 33 32 00 30 00 02 00
		08 00 01 00 01 00 00 00  24 00 05 00 01 00 01 00
		00 00 00 00 00 00 00 00  00 00 00 00 ff ff ff ff
		a9 fe 35 35 18 00 00 00  00 00 00 00`},
	{"tc qdisc del dev v0 ingress", unix.RTM_DELQDISC, 0, ingressMsg(3), `
		30 00 00 00 25 00 05 00  35 0d 15 6b 00 00 00 00
		00 00 00 00 03 00 00 00  00 00 ff ff f1 ff ff ff
		00 00 00 00 0c 00 01 00  69 6e 67 72 65 73 73 00`},
}

func TestTCMessages(t *testing.T) {
	for _, tc := range tcSent {
		t.Run(tc.command, func(t *testing.T) {
			want, err := hex.DecodeString(strings.Join(strings.Fields(tc.hex), ""))
			if err != nil {
				t.Fatal(err)
			}
			if got := message(0x6b150d35, tc.typ, tc.flags, tc.body); !bytes.Equal(got, want) {
				t.Fatalf("sent\n%s\ntc sends\n%s", hex.Dump(got), hex.Dump(want))
			}
		})
	}
}

// TestRedirectMsg reads the filter back, attribute by attribute, so a
// change to the encoding fails here with the field that moved.
func TestRedirectMsg(t *testing.T) {
	for _, to := range []int{4, 70000} {
		b := redirectMsg(9, to)
		if got := tcmsg(9, 0, ingressHandle, redirectPrio<<16|0x0300); !bytes.Equal(b[:sizeofTcMsg], got) {
			t.Fatalf("tcmsg %x", b[:sizeofTcMsg])
		}
		attrs, err := parseAttrs(b[sizeofTcMsg:])
		if err != nil || len(attrs) != 2 || attrs[0].typ != unix.TCA_KIND || cstring(attrs[0].data) != "u32" || attrs[1].typ != unix.TCA_OPTIONS {
			t.Fatalf("%+v %v", attrs, err)
		}
		opts, err := parseAttrs(attrs[1].data)
		if err != nil || len(opts) != 2 || opts[0].typ != tcaU32Act || opts[1].typ != tcaU32Sel || len(opts[1].data) != 32 || opts[1].data[2] != 1 {
			t.Fatalf("options %+v %v", opts, err)
		}
		acts, _ := parseAttrs(opts[0].data)
		if len(acts) != 1 || acts[0].typ != 1 {
			t.Fatalf("actions %+v", acts)
		}
		act, _ := parseAttrs(acts[0].data)
		if len(act) != 2 || cstring(act[0].data) != "mirred" || act[1].typ != tcaActOptions {
			t.Fatalf("action %+v", act)
		}
		parms, _ := parseAttrs(act[1].data)
		if len(parms) != 1 || parms[0].typ != tcaMirredParms || len(parms[0].data) != 28 {
			t.Fatalf("mirred %+v", parms)
		}
		p := parms[0].data
		if a, e, i := le32(p[8:]), le32(p[20:]), le32(p[24:]); a != tcActStolen || e != tcaEgressRedir || int(i) != to {
			t.Fatalf("tc_mirred: action %d, eaction %d, ifindex %d", a, e, i)
		}
	}
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
