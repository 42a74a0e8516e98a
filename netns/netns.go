//go:build linux

// Package netns is a network of their own for a group of VMs (a compose
// project's services): a network namespace that a holder process makes
// and keeps, with a local address per service and no way out, and the
// passt of each VM started inside it on request.
//
// A guest's passt connects where the guest connects, from the namespace
// it runs in. Inside a project's namespace, another service's address is
// local: a guest connecting to it reaches that service's passt, which
// listens there and hands the connection to its guest. The host's
// loopback and every other network are not there, so nothing else is
// reachable. QEMU itself stays in the host's namespace (its end of the
// socket pair with passt is all it needs), unprivileged and sandboxed:
// no process per connection, unlike QEMU's guestfwd.
//
// The holder is the namespace's first process. As root it makes a network
// namespace; otherwise a user namespace too, in which it is root (the
// kernel's unprivileged user namespaces, on by default on Debian).
package netns

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/netlink"
)

// Outlet is the bridge, with nothing attached, that the namespace's
// default route points at: passt needs a routable interface other than
// the loopback, and connections to any address not local go to it and
// find nobody.
const Outlet = "ops0"

// Isolate is how to start the holder (exec.Cmd.SysProcAttr): in a new
// network namespace, and in a new user namespace mapping ops's user to
// root inside when ops is not root.
func Isolate() *syscall.SysProcAttr { return isolate(os.Geteuid(), os.Getegid()) }

func isolate(uid, gid int) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWNET}
	if uid != 0 {
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
		a.GidMappingsEnableSetgroups = false
	}
	return a
}

// Setup readies the calling process's namespace, which must be the new
// one the holder was started in: the loopback up with addrs on it, the
// outlet bridge up with the default route to it, and every port open to
// an unprivileged bind (passt drops root, and services listen on 80).
func Setup(addrs []netip.Addr) error {
	c, err := netlink.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	// sysfs is the host's: ask the namespace itself for link indexes.
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := c.LinkUp(lo.Index); err != nil {
		return fmt.Errorf("setting the loopback up: %w", err)
	}
	for _, a := range addrs {
		if !a.Is4() {
			return fmt.Errorf("address %s is not IPv4", a)
		}
		if err := c.AddAddr(lo.Index, a.As4(), 32); err != nil {
			return fmt.Errorf("adding %s: %w", a, err)
		}
	}
	if err := c.AddBridge(Outlet); err != nil {
		return fmt.Errorf("creating bridge %s: %w", Outlet, err)
	}
	br, err := net.InterfaceByName(Outlet)
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := c.LinkUp(br.Index); err != nil {
		return fmt.Errorf("setting %s up: %w", Outlet, err)
	}
	if err := c.AddLinkRoute(br.Index); err != nil {
		return fmt.Errorf("default route to %s: %w", Outlet, err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", []byte("0\n"), 0); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}
