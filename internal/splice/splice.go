// Package splice joins two byte streams both ways: the TCP forwards of
// compose's bridged mode and of its network namespace, and the
// per-connection proxy QEMU's guestfwd runs.
package splice

import (
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
	return ForwardTo(listen, func() string { return target })
}

// ForwardTo is Forward to the address target returns for each
// connection (compose's replicas on a bridge).
func ForwardTo(listen string, target func() string) (stop func(), err error) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	go Serve(l, func() (string, error) { return target(), nil })
	return func() { l.Close() }, nil
}

// Serve accepts connections on l until it is closed, joining each to the
// address target returns for it; a connection target has no address for,
// or whose address does not answer within 5 s, is closed.
func Serve(l net.Listener, target func() (string, error)) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			addr, err := target()
			if err != nil {
				c.Close()
				return
			}
			t, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				c.Close()
				return
			}
			Join(c, t)
		}()
	}
}
