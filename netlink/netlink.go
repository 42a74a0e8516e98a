//go:build linux

// Package netlink is the little of rtnetlink ops needs, over
// golang.org/x/sys: links up, addresses, default routes, bridges, tap
// devices; reading a network namespace's links, addresses and routes;
// and the mirror that gives a VM's tap the network of a container's veth
// (MirrorVeth). The Linux guest's init and ops's tap networking share it.
package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	goerrors "github.com/go-errors/errors"
	"golang.org/x/sys/unix"
)

// Conn is a route netlink socket.
type Conn struct {
	fd  int
	seq uint32
}

// Dial opens a route netlink socket.
func Dial() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, goerrors.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, goerrors.Errorf("netlink bind: %w", err)
	}
	return &Conn{fd: fd}, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

func attr(typ uint16, data []byte) []byte {
	l := 4 + len(data)
	b := make([]byte, (l+3)&^3)
	binary.LittleEndian.PutUint16(b[0:], uint16(l))
	binary.LittleEndian.PutUint16(b[2:], typ)
	copy(b[4:], data)
	return b
}

func u32(v uint32) []byte {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, v)
	return b
}

// request sends one message and waits for its acknowledgement.
func (c *Conn) request(typ uint16, flags uint16, body []byte) error {
	c.seq++
	msg := message(c.seq, typ, flags, body)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return goerrors.Wrap(err, 0)
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			return goerrors.Wrap(err, 0)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		if done, err := ack(msgs, c.seq); done {
			return err
		}
	}
}

// message is a request: the header (its length, type, flags asking for an
// acknowledgement, sequence number seq), then body.
func message(seq uint32, typ uint16, flags uint16, body []byte) []byte {
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	msg = append(msg, body...)
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.LittleEndian.PutUint16(msg[4:], typ)
	binary.LittleEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.LittleEndian.PutUint32(msg[8:], seq)
	return msg
}

// ack finds the acknowledgement of request seq among msgs: done says
// whether one was there, err is the error it carries (nil for success).
func ack(msgs []syscall.NetlinkMessage, seq uint32) (done bool, err error) {
	for _, m := range msgs {
		if m.Header.Seq != seq || m.Header.Type != unix.NLMSG_ERROR {
			continue
		}
		if len(m.Data) < 4 {
			return true, errors.New("short netlink error")
		}
		if e := int32(binary.LittleEndian.Uint32(m.Data)); e != 0 {
			return true, goerrors.Wrap(unix.Errno(-e), 0)
		}
		return true, nil
	}
	return false, nil
}

func ifinfo(index int, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.LittleEndian.PutUint32(b[4:], uint32(index))
	binary.LittleEndian.PutUint32(b[8:], flags)
	binary.LittleEndian.PutUint32(b[12:], change)
	return b
}

// LinkUp sets a link up.
func (c *Conn) LinkUp(index int) error {
	return c.request(unix.RTM_NEWLINK, 0, ifinfo(index, unix.IFF_UP, unix.IFF_UP))
}

// AddAddr adds an IPv4 address with its prefix length.
func (c *Conn) AddAddr(index int, ip [4]byte, prefix int) error {
	return c.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, addrMsg(index, ip, prefix))
}

// addrMsg is RTM_NEWADDR's body: an ifaddrmsg and the address as both
// IFA_LOCAL and IFA_ADDRESS.
func addrMsg(index int, ip [4]byte, prefix int) []byte {
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = unix.AF_INET
	b[1] = byte(prefix)
	binary.LittleEndian.PutUint32(b[4:], uint32(index))
	b = append(b, attr(unix.IFA_LOCAL, ip[:])...)
	return append(b, attr(unix.IFA_ADDRESS, ip[:])...)
}

// AddDefaultRoute adds a default IPv4 route through gw on a link.
func (c *Conn) AddDefaultRoute(index int, gw [4]byte) error {
	return c.addDefaultRoute(index, gw[:])
}

// AddLinkRoute adds a default IPv4 route straight out of a link, with no
// gateway (scope link): every address not local is sent to that link.
func (c *Conn) AddLinkRoute(index int) error { return c.addDefaultRoute(index, nil) }

func (c *Conn) addDefaultRoute(index int, gw []byte) error {
	return c.request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE, routeMsg(index, gw))
}

// routeMsg is RTM_NEWROUTE's body for a default IPv4 route out of a link:
// through gw, or with no gateway (scope link) when gw is nil.
func routeMsg(index int, gw []byte) []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET
	b[4] = unix.RT_TABLE_MAIN
	b[5] = unix.RTPROT_BOOT
	b[6] = unix.RT_SCOPE_UNIVERSE
	b[7] = unix.RTN_UNICAST
	if gw == nil {
		b[6] = unix.RT_SCOPE_LINK
	} else {
		b = append(b, attr(unix.RTA_GATEWAY, gw)...)
	}
	return append(b, attr(unix.RTA_OIF, u32(uint32(index)))...)
}

// AddBridge creates a bridge.
func (c *Conn) AddBridge(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	return c.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, bridgeMsg(name))
}

// bridgeMsg is RTM_NEWLINK's body for a new bridge: its name and, nested
// in IFLA_LINKINFO, its kind.
func bridgeMsg(name string) []byte {
	b := ifinfo(0, 0, 0)
	b = append(b, attr(unix.IFLA_IFNAME, append([]byte(name), 0))...)
	return append(b, attr(unix.IFLA_LINKINFO, attr(unix.IFLA_INFO_KIND, []byte("bridge\x00")))...)
}

// setMaster enslaves a link to a bridge.
func (c *Conn) setMaster(index, master int) error {
	b := ifinfo(index, 0, 0)
	b = append(b, attr(unix.IFLA_MASTER, u32(uint32(master)))...)
	return c.request(unix.RTM_NEWLINK, 0, b)
}

// SetMAC sets a link's hardware address (the link down).
func (c *Conn) SetMAC(index int, mac net.HardwareAddr) error {
	return c.request(unix.RTM_NEWLINK, 0, append(ifinfo(index, 0, 0), attr(unix.IFLA_ADDRESS, mac)...))
}

// deleteLink removes a link.
func (c *Conn) deleteLink(index int) error {
	return c.request(unix.RTM_DELLINK, 0, ifinfo(index, 0, 0))
}

func checkName(name string) error {
	if name == "" || len(name) >= unix.IFNAMSIZ || strings.ContainsAny(name, "/ \x00") {
		return fmt.Errorf("interface name %q must be 1 to %d characters without / or spaces", name, unix.IFNAMSIZ-1)
	}
	return nil
}

// IfIndex reads an interface's index from sysfs, which needs no net
// package (the guest init stays small).
func IfIndex(name string) (int, error) {
	b, err := os.ReadFile("/sys/class/net/" + name + "/ifindex")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// addTap creates a persistent tap device (no packet information header),
// which QEMU then opens by name.
func addTap(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("creating tap %s: %w", name, err)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.TUNSETPERSIST), 1); e != 0 {
		return fmt.Errorf("making tap %s persistent: %w", name, e)
	}
	return nil
}
