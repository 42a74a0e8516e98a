// Package qemu builds QEMU command lines from typed parts, decides the
// accelerator, checks port forwards, and supervises the QEMU process.
package qemu

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Forward is one port forward from the host to the guest.
type Forward struct {
	Proto     string // "tcp" or "udp"
	HostIP    string
	HostPort  int
	GuestPort int
}

// DefaultBind is where forwards listen unless the user names an address:
// only this machine can reach the guest.
const DefaultBind = "127.0.0.1"

func (f Forward) String() string {
	return fmt.Sprintf("%s %s:%d -> guest %d", f.Proto, f.HostIP, f.HostPort, f.GuestPort)
}

// ParsePorts reads -p / --udp values: PORT, HOST:GUEST, IP:HOST:GUEST,
// ranges (9000-9002 forwards each port to the same guest port; a range on
// both sides maps them in order) and comma lists. A "range" that runs
// backwards (8080-80) is nanovms/ops's way to write host 8080 to guest 80,
// and means that here too (PortNotes says so).
func ParsePorts(specs []string, proto string) ([]Forward, error) {
	var out []Forward
	seen := map[string]bool{}
	for _, spec := range specs {
		for _, s := range strings.Split(spec, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			fs, err := parsePort(s, proto)
			if err != nil {
				return nil, err
			}
			for _, f := range fs {
				k := fmt.Sprintf("%s/%s/%d", f.Proto, f.HostIP, f.HostPort)
				if seen[k] {
					return nil, fmt.Errorf("port %q: host port %d/%s is forwarded twice", s, f.HostPort, f.Proto)
				}
				seen[k] = true
				out = append(out, f)
			}
		}
	}
	return out, nil
}

func parsePort(s, proto string) ([]Forward, error) {
	ip := DefaultBind
	rest := s
	if strings.HasPrefix(rest, "[") { // [::1]:8080:80
		end := strings.Index(rest, "]")
		if end < 0 {
			return nil, fmt.Errorf("port %q: unclosed [", s)
		}
		ip, rest = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
	} else if parts := strings.Split(rest, ":"); len(parts) == 3 {
		ip, rest = parts[0], parts[1]+":"+parts[2]
	} else if len(parts) > 3 {
		return nil, fmt.Errorf("port %q: use PORT, HOST:GUEST or IP:HOST:GUEST", s)
	}
	if net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("port %q: %q is not an IP address", s, ip)
	}
	hostSpec, guestSpec, mapped := strings.Cut(rest, ":")
	if !mapped {
		if h, g, ok := hostToGuest(hostSpec); ok {
			return []Forward{{Proto: proto, HostIP: ip, HostPort: h, GuestPort: g}}, nil
		}
		guestSpec = hostSpec
	}
	h0, h1, err := portRange(hostSpec)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", s, err)
	}
	g0, g1, err := portRange(guestSpec)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", s, err)
	}
	if h1-h0 != g1-g0 {
		return nil, fmt.Errorf("port %q: host and guest ranges differ in length", s)
	}
	if h1-h0 > 1000 {
		return nil, fmt.Errorf("port %q: a range may hold at most 1001 ports", s)
	}
	var out []Forward
	for i := 0; i <= h1-h0; i++ {
		out = append(out, Forward{Proto: proto, HostIP: ip, HostPort: h0 + i, GuestPort: g0 + i})
	}
	return out, nil
}

// hostToGuest reads nanovms/ops's HOST-GUEST form: two port numbers
// with the first larger, which is no range (ranges ascend).
func hostToGuest(s string) (host, guest int, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	if !isRange {
		return 0, 0, false
	}
	h, err1 := portNumber(a)
	g, err2 := portNumber(b)
	if err1 != nil || err2 != nil || h <= g {
		return 0, 0, false
	}
	return h, g, true
}

// PortNotes are the lines ops prints about how it read port specs: one
// for each HOST-GUEST form, so nobody mistakes it for a range.
func PortNotes(specs []string, flag string) []string {
	var out []string
	for _, spec := range specs {
		for _, s := range strings.Split(spec, ",") {
			s = strings.TrimSpace(s)
			rest := s
			if strings.HasPrefix(s, "[") { // [::1]:8080-80
				if i := strings.Index(s, "]"); i >= 0 {
					rest = strings.TrimPrefix(s[i+1:], ":")
				}
			}
			if h, g, ok := hostToGuest(rest); ok {
				out = append(out, fmt.Sprintf("ops: %s %s forwards host port %d to guest port %d, as nanovms/ops reads it (%d:%d says the same; ascending ranges forward each port to itself)", flag, s, h, g, h, g))
			}
		}
	}
	return out
}

func portRange(s string) (int, int, error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := portNumber(a)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	hi, err := portNumber(b)
	if err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("range %s runs backwards", s)
	}
	return lo, hi, nil
}

func portNumber(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

// CheckFree fails, naming the port, when a host port is already taken.
func CheckFree(fwds []Forward) error {
	for _, f := range fwds {
		addr := net.JoinHostPort(f.HostIP, strconv.Itoa(f.HostPort))
		if f.Proto == "udp" {
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				return fmt.Errorf("host port %d/udp on %s is already in use (or not allowed): %v", f.HostPort, f.HostIP, err)
			}
			c.Close()
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("host port %d on %s is already in use (or not allowed): %v", f.HostPort, f.HostIP, err)
		}
		l.Close()
	}
	return nil
}

// FreePort is a TCP port on 127.0.0.1 nobody listens on now, for a
// forward or a monitor whose port the user left to ops.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
