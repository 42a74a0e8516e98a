package instance

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestProbeCheck(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer ok.Close()
	redis, _ := net.Listen("tcp", "127.0.0.1:0")
	defer redis.Close()
	go func() {
		for {
			c, err := redis.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 6)
			c.Read(buf)
			if string(buf) == "PING\r\n" {
				c.Write([]byte("+PONG\r\n"))
			}
			c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		name string
		p    Probe
		ok   bool
	}{
		{"http 200", Probe{HTTP: ok.URL + "/healthz"}, true},
		{"http 404", Probe{HTTP: ok.URL + "/nope"}, false},
		{"tcp open", Probe{TCP: redis.Addr().String()}, true},
		{"tcp refused", Probe{TCP: closedAddr}, false},
		{"redis ping", Probe{TCP: redis.Addr().String(), Send: "PING\r\n", Expect: "+PONG"}, true},
		{"wrong reply", Probe{TCP: redis.Addr().String(), Send: "PING\r\n", Expect: "+PANG"}, false},
	} {
		tc.p.Timeout = 2 * time.Second
		if err := tc.p.check(context.Background()); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestWatchHealth: starting, then healthy on the first success, then
// unhealthy after Retries failures in a row.
func TestWatchHealth(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	s := Store{Dir: t.TempDir()}
	os.MkdirAll(filepath.Join(s.Dir, "x"), 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.watchHealth(ctx, "x", Probe{HTTP: srv.URL, Interval: 20 * time.Millisecond, Timeout: time.Second, Retries: 2})
	}()
	wait := func(status string) {
		t.Helper()
		for i := 0; i < 200 && s.readHealth("x") != status; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if got := s.readHealth("x"); got != status {
			t.Fatalf("health %q, want %q", got, status)
		}
	}
	wait(HealthHealthy)
	up.Store(false)
	wait(HealthUnhealthy)
	up.Store(true)
	wait(HealthHealthy)
	cancel()
	<-done
}

// TestProbeHedged: an attempt whose connection is held silent (a SYN
// passt handed a guest still booting) gets another beside it after
// hedgeAfter, which answers: the probe passes then, not at its timeout.
// A server that answers nothing still fails.
func TestProbeHedged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	held := make(chan net.Conn, 16)
	defer func() {
		close(held)
		for c := range held {
			c.Close()
		}
	}()
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(&silentFirst{Listener: ln, n: &conns, held: held})
	defer srv.Close()
	p := Probe{HTTP: "http://" + ln.Addr().String() + "/", Timeout: 20 * time.Second}
	start := time.Now()
	if err := p.check(context.Background()); err != nil {
		t.Fatalf("check: %v", err)
	}
	if took := time.Since(start); took >= p.Timeout/2 {
		t.Errorf("passed after %v: the held attempt was waited for (timeout %v)", took, p.Timeout)
	}

	mute, err := net.Listen("tcp", "127.0.0.1:0") // accepts (the backlog), never answers
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	p = Probe{HTTP: "http://" + mute.Addr().String() + "/", Timeout: 2*hedgeAfter + hedgeAfter/2}
	if err := p.check(context.Background()); err == nil {
		t.Fatal("a server that never answers passed")
	}
}

// silentFirst holds the first connection it accepts open and silent.
type silentFirst struct {
	net.Listener
	n    *atomic.Int32
	held chan net.Conn
}

func (l *silentFirst) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.n.Add(1) > 1 {
			return c, err
		}
		l.held <- c
	}
}
