// Package redisq is a minimal Redis client for the taxi example: enough
// RESP for XADD (publish an event to a stream) and XREAD BLOCK or
// XREADGROUP (consume it), with the standard library only.
package redisq

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Conn is one connection to Redis.
type Conn struct {
	c net.Conn
	r *bufio.Reader
}

// Dial connects, retrying while the broker starts. A connection counts
// only once the broker answers PING: a forwarder may accept a connection
// before the broker behind it is listening.
func Dial(addr string, wait time.Duration) (*Conn, error) {
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			conn := &Conn{c: c, r: bufio.NewReader(c)}
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if v, perr := conn.Do("PING"); perr == nil && v == "PONG" {
				c.SetDeadline(time.Time{})
				return conn, nil
			}
			c.Close()
			err = errors.New("no answer to PING")
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Do sends a command and reads its reply: string, int64, nil, error or []any.
func (c *Conn) Do(args ...string) (any, error) {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	if _, err := c.c.Write(b); err != nil {
		return nil, err
	}
	return c.read()
}

func (c *Conn) line() (string, error) {
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(s) < 3 {
		return "", errors.New("short reply")
	}
	return s[:len(s)-2], nil
}

func (c *Conn) read() (any, error) {
	l, err := c.line()
	if err != nil {
		return nil, err
	}
	switch l[0] {
	case '+':
		return l[1:], nil
	case '-':
		return nil, errors.New(l[1:])
	case ':':
		return strconv.ParseInt(l[1:], 10, 64)
	case '$':
		n, _ := strconv.Atoi(l[1:])
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := readFull(c.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(l[1:])
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply %q", l)
}

func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Entry is one stream entry.
type Entry struct {
	ID     string
	Fields map[string]string
}

// Read blocks for entries of stream after id ("$" for new ones).
func (c *Conn) Read(stream, after string, block time.Duration) ([]Entry, error) {
	return c.read1(block, "XREAD", "BLOCK", strconv.FormatInt(block.Milliseconds(), 10), "STREAMS", stream, after)
}

// ReadGroup blocks for one entry of stream that no other consumer of
// group has had: the replicas of a service share the stream's work.
func (c *Conn) ReadGroup(stream, group, consumer string, block time.Duration) ([]Entry, error) {
	if _, err := c.Do("XGROUP", "CREATE", stream, group, "0", "MKSTREAM"); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil, err
	}
	es, err := c.read1(block, "XREADGROUP", "GROUP", group, consumer, "COUNT", "1", "BLOCK", strconv.FormatInt(block.Milliseconds(), 10), "STREAMS", stream, ">")
	for _, e := range es {
		if _, err := c.Do("XACK", stream, group, e.ID); err != nil {
			return nil, err
		}
	}
	return es, err
}

func (c *Conn) read1(block time.Duration, args ...string) ([]Entry, error) {
	c.c.SetDeadline(time.Now().Add(block + 5*time.Second))
	defer c.c.SetDeadline(time.Time{})
	v, err := c.Do(args...)
	if err != nil || v == nil {
		return nil, err
	}
	var out []Entry
	for _, s := range v.([]any) {
		for _, e := range s.([]any)[1].([]any) {
			pair := e.([]any)
			kv := pair[1].([]any)
			ent := Entry{ID: pair[0].(string), Fields: map[string]string{}}
			for i := 0; i+1 < len(kv); i += 2 {
				ent.Fields[kv[i].(string)] = kv[i+1].(string)
			}
			out = append(out, ent)
		}
	}
	return out, nil
}
