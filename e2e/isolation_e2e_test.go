//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// dialGo connects to each address it is given and prints what the other
// end sent, or why nothing came.
const dialGo = `package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	for _, a := range os.Args[1:] {
		c, err := net.DialTimeout("tcp", a, 4*time.Second)
		if err != nil {
			fmt.Printf("%s: nothing (%v)\n", a, err)
			continue
		}
		c.SetDeadline(time.Now().Add(4 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if len(b) == 0 {
			fmt.Printf("%s: nothing (%v)\n", a, err)
			continue
		}
		fmt.Printf("%s: got %s\n", a, b)
	}
}
`

// serveWord answers every connection with a word and closes it.
const serveWord = `import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[3].encode())
    c.close()
`

// TestE2EHostLoopbackIsolation: inside a network namespace the test owns
// (its own loopback, and one empty bridge that is the only way out, to
// nowhere), a server listens on 127.0.0.1 and another on the namespace's
// other address. A guest started by plain `ops run` reaches the second,
// as any outbound connection, and gets nothing from the first through
// 10.0.2.2, which QEMU's own network maps to the host's loopback; with
// --host-loopback it gets both.
func TestE2EHostLoopbackIsolation(t *testing.T) {
	e := getEnv(t)
	if _, err := exec.LookPath("passt"); err != nil {
		t.Fatal("passt is not installed ('make test-deps' installs it)")
	}
	ns := netns(t)
	for _, args := range [][]string{
		{"link", "add", "out0", "type", "bridge"},
		{"addr", "add", "198.51.100.1/24", "dev", "out0"},
		{"link", "set", "out0", "up"},
		{"route", "add", "default", "via", "198.51.100.254", "dev", "out0"},
	} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "ip"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	port := freePorts(t, 2)
	serve := func(addr string, port int, word string) {
		c := exec.Command("ip", "netns", "exec", ns, "python3", "-c", serveWord, addr, fmt.Sprint(port), word)
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		ready := make(chan struct{})
		go func() {
			b := make([]byte, 6)
			out.Read(b)
			close(ready)
		}()
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			t.Fatalf("the server on %s:%d did not start", addr, port)
		}
	}
	serve("127.0.0.1", port, "loopback-secret")
	serve("198.51.100.1", port+1, "outside-hello")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"main.go": dialGo, "go.mod": "module dial\n\ngo 1.22\n"})
	if err := run(dir, "go", "build", "-o", "dial", "."); err != nil {
		t.Fatal(err)
	}
	loop := fmt.Sprintf("10.0.2.2:%d", port)
	outside := fmt.Sprintf("198.51.100.1:%d", port+1)
	forEachGuest(t, func(t *testing.T, guest, home string) {
		for _, tc := range []struct {
			flags    []string
			loopback bool
		}{
			{nil, false},
			{[]string{"--host-loopback"}, true},
		} {
			args := append([]string{"netns", "exec", ns, e.ops, "run", "--guest", guest}, tc.flags...)
			c := exec.Command("ip", append(args, "./dial", "-a", loop, "-a", outside)...)
			c.Dir = dir
			c.Env = append(c.Environ(), opsHomeEnv(home))
			out, err := c.CombinedOutput()
			text := string(out)
			t.Logf("%v:\n%s", tc.flags, text)
			if err != nil && !strings.Contains(text, outside+": ") {
				t.Fatalf("%v: %v\n%s", tc.flags, err, text)
			}
			if !strings.Contains(text, outside+": got outside-hello") {
				t.Errorf("%v: the guest did not reach %s\n%s", tc.flags, outside, text)
			}
			gotLoop := strings.Contains(text, loop+": got loopback-secret")
			if gotLoop != tc.loopback {
				t.Errorf("%v: reached the host's 127.0.0.1 through %s: %v, want %v\n%s", tc.flags, loop, gotLoop, tc.loopback, text)
			}
			if !tc.loopback && !strings.Contains(text, loop+": nothing") {
				t.Errorf("%v: no line for %s\n%s", tc.flags, loop, text)
			}
			if tc.loopback && !strings.Contains(text, "--host-loopback: the guest reaches every service") {
				t.Errorf("--host-loopback said nothing about what it opens\n%s", text)
			}
		}
		// A compose service reaches the other services by name and,
		// unless the project asks for the host's loopback, nothing else.
		cf := fmt.Sprintf("name: iso%s\nservices:\n  dial:\n    x-ops: {program: ./dial, guest: %s}\n    command: [%q, %q]\n", guest[:1], guest, loop, outside)
		writeFiles(t, dir, map[string]string{"compose.yaml": cf})
		for _, loopback := range []bool{false, true} {
			args := []string{"netns", "exec", ns, e.ops, "compose", "up"}
			if loopback {
				args = append(args, "--host-loopback")
			}
			c := exec.Command("ip", args...)
			c.Dir = dir
			c.Env = append(c.Environ(), opsHomeEnv(writableHome(t, home)))
			out, _ := c.CombinedOutput()
			text := string(out)
			t.Logf("compose, host loopback %v:\n%s", loopback, text)
			for _, addr := range []string{loop, outside} {
				got := strings.Contains(text, addr+": got ")
				if !strings.Contains(text, addr+": ") || got != loopback {
					t.Errorf("compose, host loopback %v: %s reached: %v\n%s", loopback, addr, got, text)
				}
			}
		}
	})
}
