package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Probe is a health check the supervisor runs from the host against the
// guest's forwarded port: an HTTP GET (2xx or 3xx is healthy) or a TCP
// connection, with compose's interval, timeout, retries and start period.
type Probe struct {
	HTTP          string        `json:"http,omitempty"`   // URL on the host
	TCP           string        `json:"tcp,omitempty"`    // host:port
	Send          string        `json:"send,omitempty"`   // TCP: written after connecting
	Expect        string        `json:"expect,omitempty"` // TCP: the reply starts with it
	Interval      time.Duration `json:"interval"`
	Timeout       time.Duration `json:"timeout"`
	StartPeriod   time.Duration `json:"start_period,omitempty"`
	StartInterval time.Duration `json:"start_interval,omitempty"`
	Retries       int           `json:"retries"`
}

// Health statuses.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Health is the last result of an instance's probe.
type Health struct {
	Status        string    `json:"status"`
	FailingStreak int       `json:"failing_streak"`
	Last          string    `json:"last,omitempty"` // the last failure
	Updated       time.Time `json:"updated"`
}

func (s Store) healthFile(name string) string { return filepath.Join(s.dir(name), "health.json") }

// readHealth is the recorded health status, "" when there is none.
func (s Store) readHealth(name string) string {
	var h Health
	if err := readJSON(s.healthFile(name), &h); err != nil {
		return ""
	}
	return h.Status
}

// resetOnClose makes a probe's connection end with a reset, not a FIN. A probe gives up
// on a guest still booting; its connection is then one that passt (the
// Debian 12 build) has not yet handed to the guest, and a FIN on such a
// connection sends passt into a busy loop, a core's worth, until the
// guest answers: with several guests booting on a few cores, that alone
// slowed a compose project's start by half. A reset ends it at once.
func resetOnClose(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	})
	if err != nil {
		return err
	}
	return serr
}

// hedgeAfter is how long a probe's attempt may go unanswered before
// another goes beside it, and hedgeMax how many attempts one probe makes
// at most. A connection made while the guest is still booting may be held
// for seconds: passt (the Debian 12 build) hands the guest its SYN once,
// before the guest can answer, and never again (~10 s to its timeout),
// which held a compose service's first probe, and every service waiting on
// its health, that long. A new connection gets through as soon as the
// guest listens; a slow server still has the whole timeout to answer.
const (
	hedgeAfter = time.Second
	hedgeMax   = 4
)

// check runs the probe once: its first answer, within its timeout, from
// one attempt or from the attempts that went beside a silent one.
func (p Probe) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel() // the attempts still waiting end (with a reset)
	res := make(chan error, hedgeMax)
	attempt := func() { res <- p.attempt(ctx) }
	go attempt()
	pending, made := 1, 1
	hedge := time.NewTimer(hedgeAfter)
	defer hedge.Stop()
	var last error
	for {
		select {
		case err := <-res:
			pending--
			if err == nil {
				return nil
			}
			last = err
			if pending == 0 {
				return err
			}
		case <-hedge.C:
			if made < hedgeMax {
				go attempt()
				pending++
				made++
				hedge.Reset(hedgeAfter)
			}
		case <-ctx.Done():
			if last != nil {
				return last
			}
			return ctx.Err()
		}
	}
}

// attempt is one try of the probe, until ctx ends.
func (p Probe) attempt(ctx context.Context) error {
	dialer := net.Dialer{Control: resetOnClose}
	if p.TCP != "" {
		c, err := dialer.DialContext(ctx, "tcp", p.TCP)
		if err != nil {
			return err
		}
		defer c.Close()
		if p.Expect != "" {
			dl, _ := ctx.Deadline()
			c.SetDeadline(dl)
			if _, err := c.Write([]byte(p.Send)); err != nil {
				return err
			}
			buf := make([]byte, len(p.Expect))
			if _, err := io.ReadFull(c, buf); err != nil {
				return fmt.Errorf("no reply: %v", err)
			}
			if string(buf) != p.Expect {
				return fmt.Errorf("reply %q, want %q", buf, p.Expect)
			}
			return nil
		}
		// QEMU's forward accepts before the guest does: a connection
		// counts when the guest does not close it at once (a guest still
		// booting cannot be told from a silent server; see the README).
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return fmt.Errorf("connection closed: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.HTTP, nil)
	if err != nil {
		return err
	}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: dialer.DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// watchHealth probes a booted guest until ctx ends, recording each
// change: starting until the first success (failures within the start
// period do not count), healthy, and unhealthy after Retries failures in
// a row.
func (s Store) watchHealth(ctx context.Context, name string, p Probe) {
	h := Health{Status: HealthStarting}
	write := func() {
		h.Updated = time.Now().UTC()
		writeJSON(s.healthFile(name), h)
	}
	write()
	start := time.Now()
	for {
		wait := p.Interval
		if h.Status == HealthStarting && p.StartInterval > 0 && time.Since(start) < p.StartPeriod {
			wait = p.StartInterval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		err := p.check(ctx)
		if ctx.Err() != nil {
			return
		}
		before := h
		if err == nil {
			h.Status, h.FailingStreak, h.Last = HealthHealthy, 0, ""
		} else {
			h.Last = err.Error()
			if h.Status != HealthStarting || time.Since(start) >= p.StartPeriod {
				h.FailingStreak++
			}
			if h.FailingStreak >= p.Retries {
				h.Status = HealthUnhealthy
			}
		}
		if before.Status != h.Status || before.FailingStreak != h.FailingStreak {
			write()
		}
	}
}

// clearHealth removes the health record (the guest is not running).
func (s Store) clearHealth(name string) { os.Remove(s.healthFile(name)) }
