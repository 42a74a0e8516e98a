// Package splice joins two byte streams both ways: the TCP forwards of
// compose's bridged mode and of its network namespace, and the
// per-connection proxy QEMU's guestfwd runs.
package splice

import (
	"errors"
	"io"
	"net"
	"time"
)

// closeWriter is a stream whose sending half can be closed on its own
// (a TCP connection), so the peer sees the end of the data while replies
// still flow back.
type closeWriter interface{ CloseWrite() error }

// lingerer is a stream that can be made to end with a reset (a TCP
// connection).
type lingerer interface{ SetLinger(sec int) error }

// Join copies a to b and b to a until both directions end, passing on
// each end of data, then closes both. A side that fails (a reset) ends
// both: the other is closed with a reset too, as the peer would have seen
// without ops between them.
func Join(a, b io.ReadWriteCloser) {
	done := make(chan struct{}, 2)
	pipe := func(dst, src io.ReadWriteCloser) {
		if _, err := io.Copy(dst, src); err != nil {
			for _, c := range []io.ReadWriteCloser{dst, src} {
				if l, ok := c.(lingerer); ok {
					l.SetLinger(0)
				}
				c.Close()
			}
		} else if cw, ok := dst.(closeWriter); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(a, b)
	go pipe(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

// Dial connects to a TCP address, retrying for up to wait: the service
// behind it may still be booting.
func Dial(addr string, wait time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Forward accepts TCP connections on listen and joins each to target.
// stop closes the listener; joined connections end on their own.
func Forward(listen, target string) (stop func(), err error) {
	return ForwardTo(listen, func() Route { return Route{Addrs: []string{target}} })
}

// ForwardTo is Forward to the addresses route gives each connection
// (compose's replicas on a bridge).
func ForwardTo(listen string, route func() Route) (stop func(), err error) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	go Serve(l, func() (Route, error) { return route(), nil })
	return func() { l.Close() }, nil
}

// Route is where one connection may go: the addresses to try, best first
// (a service's replicas), and who to tell of one that did not answer.
type Route struct {
	Addrs  []string
	Failed func(addr string, err error) // nil: no one
}

// ConnectTimeout is how long a connection waits for its last address to
// answer; each address before the last gets a second of it.
const ConnectTimeout = 5 * time.Second

// DialRoute connects to the first of the route's addresses that answers,
// trying them in order, and tells route.Failed of each that did not.
func DialRoute(r Route) (net.Conn, error) {
	if len(r.Addrs) == 0 {
		return nil, errors.New("no address to connect to")
	}
	deadline := time.Now().Add(ConnectTimeout)
	var errs []error
	for i, addr := range r.Addrs {
		wait := time.Until(deadline)
		if i < len(r.Addrs)-1 {
			wait = min(wait, time.Second)
		}
		c, err := net.DialTimeout("tcp", addr, max(wait, 100*time.Millisecond))
		if err == nil {
			return c, nil
		}
		if r.Failed != nil {
			r.Failed(addr, err)
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// Serve accepts connections on l until it is closed, joining each to the
// first address of the route given for it that answers (within
// ConnectTimeout in all); a connection route has no address for, or none
// of whose addresses answers, is closed.
func Serve(l net.Listener, route func() (Route, error)) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			r, err := route()
			if err != nil {
				c.Close()
				return
			}
			t, err := DialRoute(r)
			if err != nil {
				c.Close()
				return
			}
			Join(c, t)
		}()
	}
}
