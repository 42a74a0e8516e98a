package ociruntime

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	opsfs "github.com/opsdev/ops/fs"
)

func TestRelayResolvConf(t *testing.T) {
	relay := netip.MustParseAddr(dnsRelayAddr)
	tests := []struct {
		name, in, want string
		upstreams      []string
	}{
		{"Docker's user-defined network", "search example.com\nnameserver 127.0.0.11\noptions ndots:0\n",
			"search example.com\nnameserver 169.254.53.53\noptions ndots:0\n", []string{"127.0.0.11:53"}},
		{"Docker's default bridge: the host's resolvers", "nameserver 192.0.2.53\nnameserver 2001:db8::53\n",
			"nameserver 192.0.2.53\nnameserver 2001:db8::53\n", nil},
		{"several on loopback, one not, a tab, no final newline", "nameserver\t127.0.0.53\nnameserver 192.0.2.53\nnameserver ::1",
			"nameserver 169.254.53.53\nnameserver 192.0.2.53\n", []string{"127.0.0.53:53", "[::1]:53"}},
		{"comments and look-alikes stay", "# nameserver 127.0.0.11\n nameserver 127.0.0.1\nnameservers 127.0.0.1\nnameserver fe80::1%eth0\n",
			"# nameserver 127.0.0.11\n nameserver 127.0.0.1\nnameservers 127.0.0.1\nnameserver fe80::1%eth0\n", nil},
		{"CRLF", "nameserver 127.0.0.11\r\noptions ndots:0\r\n", "nameserver 169.254.53.53\noptions ndots:0\r\n", []string{"127.0.0.11:53"}},
		{"empty", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ups := relayResolvConf([]byte(tt.in), relay)
			var got []string
			for _, u := range ups {
				got = append(got, u.String())
			}
			if string(out) != tt.want || !slices.Equal(got, tt.upstreams) {
				t.Fatalf("got %q %v, want %q %v", out, got, tt.want, tt.upstreams)
			}
		})
	}
}

func FuzzRelayResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 127.0.0.11\noptions ndots:0\n"))
	f.Add([]byte("nameserver ::1\nnameserver 10.0.0.1"))
	relay := netip.MustParseAddr(dnsRelayAddr)
	f.Fuzz(func(t *testing.T, in []byte) {
		out, ups := relayResolvConf(in, relay)
		if len(ups) == 0 {
			if !bytes.Equal(out, in) {
				t.Fatalf("changed without a loopback resolver: %q -> %q", in, out)
			}
			return
		}
		for _, u := range ups {
			if !u.Addr().IsLoopback() || u.Port() != 53 {
				t.Fatalf("upstream %s", u)
			}
		}
		var relays int
		for _, line := range strings.SplitAfter(string(out), "\n") {
			a, ok := nameserver(line)
			if ok && a.IsLoopback() {
				t.Fatalf("a loopback resolver left: %q", out)
			}
			if ok && a == relay {
				relays++
			}
		}
		if relays < 1 {
			t.Fatalf("no relay in %q", out)
		}
	})
}

// TestRelayDNS: only the tap mode's resolv.conf with a loopback resolver
// is pointed at the relay.
func TestRelayDNS(t *testing.T) {
	conf := func(s string) []opsfs.Entry {
		return []opsfs.Entry{{Path: "/etc/hosts", Kind: opsfs.KindFile, Data: []byte("127.0.0.1 localhost\n")},
			{Path: "/etc/resolv.conf", Kind: opsfs.KindFile, Data: []byte(s)}}
	}
	tests := []struct {
		name, mode, resolv, want string
		relay                    bool
	}{
		{"tap, Docker's 127.0.0.11", "tap", "nameserver 127.0.0.11\n", "nameserver 169.254.53.53\n", true},
		{"tap, a reachable resolver", "tap", "nameserver 192.0.2.53\n", "nameserver 192.0.2.53\n", false},
		{"no network", "none", "nameserver 127.0.0.11\n", "nameserver 127.0.0.11\n", false},
	}
	for _, tt := range tests {
		n := Network{Mode: tt.mode}
		extra := conf(tt.resolv)
		n.relayDNS(extra)
		if string(extra[1].Data) != tt.want || (n.DNSRelay != "") != tt.relay || (len(n.DNSUpstreams) > 0) != tt.relay ||
			string(extra[0].Data) != "127.0.0.1 localhost\n" {
			t.Errorf("%s: %q, network %+v", tt.name, extra[1].Data, n)
		}
	}
}
