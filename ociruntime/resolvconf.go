package ociruntime

import (
	"net/netip"
	"strings"
)

// relayResolvConf is the engine's resolv.conf data as the guest gets it
// when it names resolvers on the container namespace's loopback (Docker's
// 127.0.0.11 on a user-defined network), which the guest cannot reach:
// the first of them becomes relay (where the supervisor answers in their
// place, dnsrelay), the others go, and every other line stays.
// upstreams are those resolvers, port 53, in order; none when data names
// none (out is data then).
func relayResolvConf(data []byte, relay netip.Addr) (out []byte, upstreams []netip.AddrPort) {
	lines := strings.SplitAfter(string(data), "\n")
	var b strings.Builder
	for _, line := range lines {
		a, ok := nameserver(line)
		if !ok || !a.IsLoopback() {
			b.WriteString(line)
			continue
		}
		if len(upstreams) == 0 {
			b.WriteString("nameserver " + relay.String() + "\n")
		}
		upstreams = append(upstreams, netip.AddrPortFrom(a, 53))
	}
	if len(upstreams) == 0 {
		return data, nil
	}
	return []byte(b.String()), upstreams
}

// nameserver reads a resolv.conf line "nameserver ADDR" (what glibc and
// Go's resolver read: the keyword at the line's start, the address up to
// the next blank; IPv6 with a zone is not loopback, and is left alone).
func nameserver(line string) (netip.Addr, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "nameserver" || !strings.HasPrefix(line, "nameserver") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(f[1])
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
