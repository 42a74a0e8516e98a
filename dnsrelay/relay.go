// Package dnsrelay answers a VM's DNS queries in its place on the link
// the VM's frames come through: a query the guest sends over UDP to the
// relay's address is sent on to resolvers only the relaying process
// reaches (an engine's resolver on a container namespace's loopback,
// Docker's 127.0.0.11), and the answer goes back to the guest as the
// frames it expects; ARP asking for the relay's address is answered too.
// It speaks Ethernet, ARP, IPv4 and UDP over frames, so that it needs no
// address of its own on the link (the guest's address, which it would
// answer to, is the namespace's own).
package dnsrelay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Relay is one relay: the guest's resolver at Addr.
type Relay struct {
	// Addr is the address the guest's resolv.conf names, IPv4; nothing
	// else on the guest's network may have it.
	Addr netip.Addr
	// MAC is what ARP asking for Addr is answered with.
	MAC net.HardwareAddr
	// Upstreams are the resolvers queries go to, tried in order.
	Upstreams []netip.AddrPort
	// MTU is the link's: longer answers go back in IPv4 fragments.
	// Default 1500.
	MTU int
	// Timeout bounds one query, every upstream tried included. Default
	// 5 s.
	Timeout time.Duration
	// MaxInFlight bounds the queries being relayed at once; one more is
	// dropped (the guest's resolver asks again). Default 64.
	MaxInFlight int
	// Failed, when set, hears of a query that got no answer.
	Failed func(error)

	ipID atomic.Uint32 // the next reply's IPv4 identification
}

// Link is where the guest's frames are read and the relay's written: one
// frame per call.
type Link interface {
	io.Reader
	io.Writer
}

// Serve answers the frames read from link until a read fails (the link
// closed) or ctx ends, then waits for the queries being relayed: cancel
// ctx and close the link to stop it. It returns the read's error, nil
// when ctx has ended.
func (r *Relay) Serve(ctx context.Context, link Link) error {
	if !r.Addr.Is4() {
		return fmt.Errorf("dns relay: address %s is not IPv4", r.Addr)
	}
	if len(r.Upstreams) == 0 {
		return errors.New("dns relay: no upstream resolver")
	}
	slots := make(chan struct{}, orDefault(r.MaxInFlight, 64))
	var wg sync.WaitGroup
	defer wg.Wait()
	buf := make([]byte, 65536)
	for {
		n, err := link.Read(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dns relay: reading the link: %w", err)
		}
		frame := buf[:n]
		if reply := r.answerARP(frame); reply != nil {
			link.Write(reply) // a lost answer is asked again
			continue
		}
		q, ok := r.parseQuery(frame)
		if !ok {
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			r.failed(fmt.Errorf("dns relay: %d queries in flight already: one from %s dropped", cap(slots), q.src))
			continue
		}
		q.payload = append([]byte(nil), q.payload...)
		wg.Go(func() {
			defer func() { <-slots }()
			answer, err := r.exchange(ctx, q.payload)
			if err != nil {
				r.failed(fmt.Errorf("dns relay: a query from %s: %w", q.src, err))
				return
			}
			for _, f := range r.replyFrames(q, answer) {
				if _, err := link.Write(f); err != nil {
					r.failed(fmt.Errorf("dns relay: answering %s: %w", q.src, err))
					return
				}
			}
		})
	}
}

func (r *Relay) failed(err error) {
	if r.Failed != nil {
		r.Failed(err)
	}
}

// orDefault is v, or def when v is not positive.
func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// exchange sends msg to the upstreams in turn, each given an equal share
// of what is left of the timeout, and returns the first answer.
func (r *Relay) exchange(ctx context.Context, msg []byte) ([]byte, error) {
	if len(msg) < 12 {
		return nil, errors.New("not a DNS message: shorter than its header")
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(r.Timeout, 5*time.Second))
	defer cancel()
	deadline, _ := ctx.Deadline()
	var errs []error
	for i, u := range r.Upstreams {
		share := time.Until(deadline) / time.Duration(len(r.Upstreams)-i)
		answer, err := exchangeOne(ctx, u, msg, time.Now().Add(share))
		if err == nil {
			return answer, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// exchangeOne sends msg to one resolver from a socket of its own and
// reads until the answer with msg's ID comes, or the deadline.
func exchangeOne(ctx context.Context, to netip.AddrPort, msg []byte, deadline time.Time) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", to.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		// The same ID, and the QR bit: an answer to this query.
		if n >= 12 && buf[0] == msg[0] && buf[1] == msg[1] && buf[2]&0x80 != 0 {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}
