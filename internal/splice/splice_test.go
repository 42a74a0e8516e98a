package splice

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// echo serves one line back per connection, upper-cased, after reading
// to the end of the client's data: it needs the half-close to answer.
func echo(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write([]byte(strings.ToUpper(string(b))))
			}()
		}
	}()
	return l.Addr().String()
}

func TestForward(t *testing.T) {
	target := echo(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	stop, err := Forward(listen, target)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, msg := range []string{"hello", "", strings.Repeat("x", 1<<20)} {
		c, err := Dial(listen, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			c.Write([]byte(msg))
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(bufio.NewReader(c))
		c.Close()
		if err != nil || string(got) != strings.ToUpper(msg) {
			t.Fatalf("%d bytes sent: got %d bytes, err %v", len(msg), len(got), err)
		}
	}
	stop()
	if _, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		t.Error("the forward still accepts after stop")
	}
}

func TestDialGivesUp(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, err := Dial(addr, 300*time.Millisecond); err == nil {
		t.Fatal("dialled a closed port")
	}
}

// TestResetPassesOn: a client that resets its connection resets the one to
// the target too (a FIN there would tell the target the client had
// finished sending and waits for the reply).
func TestResetPassesOn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(c)
		got <- err
	}()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go Serve(front, func() (Route, error) { return Route{Addrs: []string{l.Addr().String()}}, nil })
	defer front.Close()
	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("partial request"))
	time.Sleep(100 * time.Millisecond)
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	if err := <-got; err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("the target saw %v, want a reset", err)
	}
}

// closedPort is an address on 127.0.0.1 that refuses connections.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestDialRoute: a connection goes to the first address that answers; each
// that refused before it is reported, and one that none answers fails.
func TestDialRoute(t *testing.T) {
	up, down1, down2 := echo(t), closedPort(t), closedPort(t)
	for _, tc := range []struct {
		name   string
		addrs  []string
		want   string // the address connected to; "" for none
		failed []string
	}{
		{"first answers", []string{up, down1}, up, nil},
		{"first refuses", []string{down1, up}, up, []string{down1}},
		{"two refuse", []string{down1, down2, up}, up, []string{down1, down2}},
		{"none answers", []string{down1, down2}, "", []string{down1, down2}},
		{"no address", nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failed []string
			start := time.Now()
			c, err := DialRoute(Route{Addrs: tc.addrs, Failed: func(addr string, _ error) { failed = append(failed, addr) }})
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v: a refusal is not waited on", took)
			}
			got := ""
			if err == nil {
				got = c.RemoteAddr().String()
				c.Close()
			}
			if got != tc.want || strings.Join(failed, " ") != strings.Join(tc.failed, " ") {
				t.Fatalf("connected to %q (err %v), failed %v; want %q, failed %v", got, err, failed, tc.want, tc.failed)
			}
		})
	}
}

// TestServeRetries: a connection whose first address refuses is joined to
// the next, and the client never sees the refusal.
func TestServeRetries(t *testing.T) {
	up, down := echo(t), closedPort(t)
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	go Serve(front, func() (Route, error) { return Route{Addrs: []string{down, up}}, nil })
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", front.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("ping"))
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "PING" {
			t.Fatalf("connection %d: %q %v", i, got, err)
		}
	}
}
