package dnsrelay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var (
	relayAddr = netip.MustParseAddr("169.254.53.53")
	guestAddr = netip.MustParseAddr("192.0.2.2")
	relayMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x53}
	guestMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	gwMAC     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01} // the gateway's: where the Linux guest sends what is off its subnet
)

// fakeLink is the guest's side of a link: frames written to in are read
// by the relay, what the relay writes comes out of out.
type fakeLink struct {
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once
}

func newFakeLink() *fakeLink {
	return &fakeLink{in: make(chan []byte, 16), out: make(chan []byte, 64), closed: make(chan struct{})}
}

func (l *fakeLink) Read(b []byte) (int, error) {
	select {
	case f := <-l.in:
		return copy(b, f), nil
	case <-l.closed:
		return 0, io.EOF
	}
}

func (l *fakeLink) Write(b []byte) (int, error) {
	l.out <- append([]byte(nil), b...)
	return len(b), nil
}

func (l *fakeLink) Close() { l.once.Do(func() { close(l.closed) }) }

// next is the next frame the relay wrote, or nil after d.
func (l *fakeLink) next(d time.Duration) []byte {
	select {
	case f := <-l.out:
		return f
	case <-time.After(d):
		return nil
	}
}

// fakeResolver answers on 127.0.0.1 every query with its question and
// extra bytes of answer, after delay; a negative delay never answers.
func fakeResolver(t *testing.T, extra int, delay time.Duration) (netip.AddrPort, *sync.WaitGroup) {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var asked sync.WaitGroup
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			asked.Done()
			if delay < 0 {
				continue
			}
			answer := append([]byte(nil), buf[:n]...)
			answer[2] |= 0x80 // QR: an answer
			answer = append(answer, bytes.Repeat([]byte{0xab}, extra)...)
			time.Sleep(delay)
			c.WriteTo(answer, from)
		}
	}()
	return netip.MustParseAddrPort(c.LocalAddr().String()), &asked
}

// queryFrame is the guest's DNS query id, to the relay from port 40000,
// in a frame to dstMAC, as a guest's stack sends it.
func queryFrame(dstMAC net.HardwareAddr, to netip.Addr, port uint16, id uint16) []byte {
	dns := make([]byte, 12, 40)
	binary.BigEndian.PutUint16(dns, id)
	dns[5] = 1 // one question
	dns = append(dns, "\x03web\x00\x00\x01\x00\x01"...)
	udp := make([]byte, udpHeader, udpHeader+len(dns))
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], port)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpHeader+len(dns)))
	udp = append(udp, dns...)
	f := make([]byte, ethHeader+ipHeader, ethHeader+ipHeader+len(udp))
	copy(f[0:], dstMAC)
	copy(f[6:], guestMAC)
	binary.BigEndian.PutUint16(f[12:], etherIPv4)
	ip := f[ethHeader:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(ipHeader+len(udp)))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
	ip[8], ip[9] = 64, protoUDP
	s, d := guestAddr.As4(), to.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], ^sum(0, ip[:ipHeader]))
	return append(f, udp...)
}

func arpRequest(target netip.Addr) []byte {
	f := make([]byte, ethHeader+arpLen)
	copy(f[0:], net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:], guestMAC)
	binary.BigEndian.PutUint16(f[12:], etherARP)
	a := f[ethHeader:]
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], etherIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 1)
	copy(a[8:], guestMAC)
	s, t := guestAddr.As4(), target.As4()
	copy(a[14:], s[:])
	copy(a[24:], t[:])
	return f
}

// reassemble checks the reply's frames (Ethernet and IPv4 headers,
// checksums) and returns its UDP datagram.
func reassemble(t *testing.T, frames [][]byte, wantDst net.HardwareAddr) []byte {
	t.Helper()
	var udp []byte
	for i, f := range frames {
		if !bytes.Equal(f[0:6], guestMAC) || !bytes.Equal(f[6:12], wantDst) || binary.BigEndian.Uint16(f[12:]) != etherIPv4 {
			t.Fatalf("frame %d: Ethernet header % x", i, f[:ethHeader])
		}
		ip := f[ethHeader:]
		if sum(0, ip[:ipHeader]) != 0xffff || int(binary.BigEndian.Uint16(ip[2:])) != len(ip) || ip[9] != protoUDP ||
			netip.AddrFrom4([4]byte(ip[12:16])) != relayAddr || netip.AddrFrom4([4]byte(ip[16:20])) != guestAddr {
			t.Fatalf("frame %d: IPv4 header % x", i, ip[:ipHeader])
		}
		frag := binary.BigEndian.Uint16(ip[6:])
		if int(frag&0x1fff)*8 != len(udp) || (frag&0x2000 != 0) != (i < len(frames)-1) {
			t.Fatalf("frame %d: fragment field %#x after %d bytes", i, frag, len(udp))
		}
		udp = append(udp, ip[ipHeader:]...)
	}
	s, d := relayAddr.As4(), guestAddr.As4()
	pseudo := append(append(append([]byte(nil), s[:]...), d[:]...), 0, protoUDP, byte(len(udp)>>8), byte(len(udp)))
	if sum(sum(0, pseudo), udp) != 0xffff {
		t.Fatal("the UDP checksum does not add up")
	}
	if binary.BigEndian.Uint16(udp[0:]) != dnsPort || binary.BigEndian.Uint16(udp[2:]) != 40000 || int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		t.Fatalf("UDP header % x", udp[:udpHeader])
	}
	return udp[udpHeader:]
}

func TestRelay(t *testing.T) {
	tests := []struct {
		name     string
		mtu      int
		extra    int           // answer bytes beyond the question
		delay    time.Duration // the resolver's; negative: never
		frame    []byte
		dstMAC   net.HardwareAddr // what the query was sent to, and the answer comes from
		answered bool
		frames   int
	}{
		{"a query through the gateway's MAC (Linux)", 1500, 16, 0, queryFrame(gwMAC, relayAddr, 53, 7), gwMAC, true, 1},
		{"a query to the relay's MAC (Nanos, link-local on link)", 1500, 16, 0, queryFrame(relayMAC, relayAddr, 53, 8), relayMAC, true, 1},
		{"an answer longer than the MTU, in fragments", 576, 1200, 0, queryFrame(gwMAC, relayAddr, 53, 9), gwMAC, true, 3},
		{"to another address", 1500, 16, 0, queryFrame(gwMAC, guestAddr, 53, 10), nil, false, 0},
		{"to another port", 1500, 16, 0, queryFrame(gwMAC, relayAddr, 5353, 11), nil, false, 0},
		{"the resolver never answers", 1500, 16, -1, queryFrame(gwMAC, relayAddr, 53, 12), nil, false, 0},
		{"the resolver answers too late", 1500, 16, 400 * time.Millisecond, queryFrame(gwMAC, relayAddr, 53, 13), nil, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, asked := fakeResolver(t, tt.extra, tt.delay)
			var mu sync.Mutex
			var failures []error
			r := &Relay{Addr: relayAddr, MAC: relayMAC, Upstreams: []netip.AddrPort{up}, MTU: tt.mtu, Timeout: 200 * time.Millisecond,
				Failed: func(err error) { mu.Lock(); failures = append(failures, err); mu.Unlock() }}
			link := newFakeLink()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Serve(ctx, link) }()
			if tt.answered || tt.delay != 0 {
				asked.Add(1)
			}
			link.in <- tt.frame
			var frames [][]byte
			for f := link.next(time.Second); f != nil; f = link.next(300 * time.Millisecond) {
				frames = append(frames, f)
			}
			if tt.answered || tt.delay != 0 {
				asked.Wait()
			}
			cancel()
			link.Close()
			if err := <-done; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if len(frames) != tt.frames {
				t.Fatalf("%d frames back, want %d", len(frames), tt.frames)
			}
			mu.Lock()
			defer mu.Unlock()
			if !tt.answered {
				if tt.delay != 0 && (len(failures) != 1 || !errors.Is(failures[0], context.DeadlineExceeded) && !isTimeout(failures[0])) {
					t.Fatalf("failures %v, want one timeout", failures)
				}
				return
			}
			q, _ := r.parseQuery(tt.frame)
			dns := reassemble(t, frames, tt.dstMAC)
			if !bytes.Equal(dns[:2], q.payload[:2]) || dns[2]&0x80 == 0 || len(dns) != len(q.payload)+tt.extra {
				t.Fatalf("answer % x to query % x", dns, q.payload)
			}
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestARP(t *testing.T) {
	r := &Relay{Addr: relayAddr, MAC: relayMAC}
	reply := r.answerARP(arpRequest(relayAddr))
	if len(reply) != ethHeader+arpLen || !bytes.Equal(reply[0:6], guestMAC) || !bytes.Equal(reply[6:12], relayMAC) {
		t.Fatalf("reply % x", reply)
	}
	a := reply[ethHeader:]
	if binary.BigEndian.Uint16(a[6:]) != 2 || !bytes.Equal(a[8:14], relayMAC) || netip.AddrFrom4([4]byte(a[14:18])) != relayAddr ||
		!bytes.Equal(a[18:24], guestMAC) || netip.AddrFrom4([4]byte(a[24:28])) != guestAddr {
		t.Fatalf("ARP reply % x", a)
	}
	for _, f := range [][]byte{arpRequest(guestAddr), reply, queryFrame(gwMAC, relayAddr, 53, 1), nil} {
		if r.answerARP(f) != nil {
			t.Fatalf("answered % x", f)
		}
	}
}

// TestInFlight: a query beyond MaxInFlight is dropped at once.
func TestInFlight(t *testing.T) {
	up, asked := fakeResolver(t, 0, -1)
	var mu sync.Mutex
	var failures []error
	r := &Relay{Addr: relayAddr, MAC: relayMAC, Upstreams: []netip.AddrPort{up}, Timeout: 300 * time.Millisecond, MaxInFlight: 2,
		Failed: func(err error) { mu.Lock(); failures = append(failures, err); mu.Unlock() }}
	link := newFakeLink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, link) }()
	asked.Add(2)
	for id := range uint16(3) {
		link.in <- queryFrame(gwMAC, relayAddr, 53, id)
	}
	asked.Wait()
	cancel() // ends the two waiting for the resolver at once
	link.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) != 3 {
		t.Fatalf("failures: %v", failures)
	}
}

func FuzzFrames(f *testing.F) {
	f.Add(queryFrame(gwMAC, relayAddr, 53, 1))
	f.Add(arpRequest(relayAddr))
	f.Add([]byte{})
	r := &Relay{Addr: relayAddr, MAC: relayMAC, MTU: 100}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if reply := r.answerARP(frame); reply != nil && len(reply) != ethHeader+arpLen {
			t.Fatalf("ARP reply of %d bytes", len(reply))
		}
		q, ok := r.parseQuery(frame)
		if !ok {
			return
		}
		if len(q.payload) > len(frame) || q.src.BitLen() != 32 {
			t.Fatalf("query %+v from a frame of %d bytes", q, len(frame))
		}
		var udp int
		for _, f := range r.replyFrames(q, q.payload) {
			if len(f) > ethHeader+100 {
				t.Fatalf("a frame of %d bytes over MTU 100", len(f))
			}
			udp += len(f) - ethHeader - ipHeader
		}
		if udp != udpHeader+len(q.payload) {
			t.Fatalf("%d bytes of UDP sent for %d", udp, udpHeader+len(q.payload))
		}
	})
}
