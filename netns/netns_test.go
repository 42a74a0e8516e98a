//go:build linux

package netns

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary plays the holder: started with OPS_NETNS_TEST=holder in
// a namespace Isolate made, it sets it up and checks it from inside; with
// OPS_NETNS_TEST=user (run as an unprivileged user) it starts the holder
// as ops would for that user.
func TestMain(m *testing.M) {
	switch os.Getenv("OPS_NETNS_TEST") {
	case "holder":
		if err := holderChecks(); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("ok")
		os.Exit(0)
	case "user":
		out, err := startHolder(os.Args[0], Isolate())
		fmt.Print(out)
		if err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holderChecks sets the namespace up, then: the service address takes a
// listener on port 80 and answers there, and an address outside does not.
func holderChecks() error {
	if err := Setup([]netip.Addr{netip.MustParseAddr("10.0.2.101")}); err != nil {
		return err
	}
	if _, err := net.InterfaceByName(Outlet); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "10.0.2.101:80")
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := net.DialTimeout("tcp", "10.0.2.101:80", time.Second)
	if err != nil {
		return fmt.Errorf("the service address does not answer: %w", err)
	}
	c.Close()
	if c, err := net.DialTimeout("tcp", "192.0.2.1:80", 500*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("connected out of the namespace to %s", c.RemoteAddr())
	}
	return nil
}

func startHolder(bin string, attr *syscall.SysProcAttr) (string, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "OPS_NETNS_TEST=holder")
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSetup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: a network namespace without a user namespace needs root (TestSetupRootless covers users)")
	}
	out, err := startHolder(os.Args[0], Isolate())
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestSetupRootless: a user who is not root gets the namespace through a
// user namespace of their own.
func TestSetupRootless(t *testing.T) {
	bin := os.Args[0]
	var attr *syscall.SysProcAttr
	if os.Geteuid() == 0 {
		// Become nobody first, with a copy of the test binary nobody
		// can run.
		dir := t.TempDir()
		os.Chmod(filepath.Dir(dir), 0o755)
		os.Chmod(dir, 0o755)
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(dir, "netns.test")
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	cmd := exec.Command(bin)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "OPS_NETNS_TEST=user")
	if attr == nil {
		cmd.Env = append(os.Environ(), "OPS_NETNS_TEST=holder")
		attr = Isolate()
	}
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "operation not permitted") {
		t.Skipf("SKIP: this kernel gives unprivileged users no user namespace: %s", out)
	}
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestCheckArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--foreground", "--fd", "3", "--tcp-ports", "10.0.2.101/80:80"}, true},
		{[]string{"--address", "10.0.2.15", "--netmask", "24", "--no-map-gw", "--ipv4-only"}, true},
		{[]string{"--runas", "0"}, false},
		{[]string{"--fd", "3", "--pid", "/etc/passwd"}, false},
		{[]string{"-t", "80"}, false},
		{[]string{"--netns", "/proc/1/ns/net"}, false},
	} {
		if err := checkArgs(c.args); (err == nil) != c.ok {
			t.Errorf("checkArgs(%q) = %v, want ok %v", c.args, err, c.ok)
		}
	}
}

// TestSpawn: the server starts its passt (here a script) with the
// client's arguments, its end of the socket pair as descriptor 3 and the
// client's standard error; it refuses other options.
func TestSpawn(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "passt")
	script := "#!/bin/sh\necho \"args: $*\" >&2\nhead -c 5 <&3 >&2\necho ' bye' >&3\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "net.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go Server{Passt: fake}.Serve(l)

	pair := func() (*os.File, *os.File) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	}
	ours, theirs := pair()
	defer ours.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	child, err := Spawn(sock, []string{"--fd", "3", "--one-off"}, theirs, w)
	theirs.Close()
	w.Close()
	if err != nil || child.Pid <= 0 {
		t.Fatalf("Spawn: %+v %v", child, err)
	}
	ours.Write([]byte("hello"))
	reply, _ := io.ReadAll(ours)
	stderr, _ := io.ReadAll(r)
	if string(reply) != " bye\n" || string(stderr) != "args: --fd 3 --one-off\nhello" {
		t.Fatalf("reply %q, stderr %q", reply, stderr)
	}
	if code, err := child.Wait(); code != 0 || err != nil {
		t.Fatalf("exit status %d, %v", code, err)
	}
	// A passt that fails: its status comes back.
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ours1, theirs1 := pair()
	defer ours1.Close()
	child, err = Spawn(sock, []string{"--fd", "3"}, theirs1, theirs1)
	theirs1.Close()
	if err != nil {
		t.Fatal(err)
	}
	if code, err := child.Wait(); code != 3 || err != nil {
		t.Fatalf("exit status %d, %v; want 3", code, err)
	}

	ours2, theirs2 := pair()
	defer ours2.Close()
	defer theirs2.Close()
	if _, err := Spawn(sock, []string{"--log-file", "/tmp/x"}, theirs2, theirs2); err == nil || !strings.Contains(err.Error(), "--log-file") {
		t.Fatalf("a file option was accepted: %v", err)
	}
	if _, err := Spawn(filepath.Join(dir, "none.sock"), nil, theirs2, theirs2); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("no holder: %v", err)
	}
}

// FuzzSpawnRequest: whatever a client sends with its two descriptors, the
// server answers with one JSON reply and starts nothing it should not.
func FuzzSpawnRequest(f *testing.F) {
	f.Add([]byte(`{"args":["--fd","3","--tcp-ports","10.0.2.101/80:80"]}`))
	f.Add([]byte(`{"args":["--pid","/tmp/x"]}`))
	f.Add([]byte(`{"args":`))
	f.Add([]byte{})
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		f.Fatal(err)
	}
	defer devnull.Close()
	s := Server{Passt: "/nonexistent/passt", Started: func(int) { panic("started") }}
	f.Fuzz(func(t *testing.T, body []byte) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		client := os.NewFile(uintptr(fds[0]), "client")
		defer client.Close()
		sf := os.NewFile(uintptr(fds[1]), "server")
		fc, err := net.FileConn(sf)
		sf.Close()
		if err != nil {
			t.Fatal(err)
		}
		cc, err := net.FileConn(client)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		uc := cc.(*net.UnixConn)
		if len(body) > maxRequest {
			body = body[:maxRequest]
		}
		if _, _, err := uc.WriteMsgUnix(body, syscall.UnixRights(int(devnull.Fd()), int(devnull.Fd())), nil); err != nil && len(body) > 0 {
			t.Fatal(err)
		}
		uc.CloseWrite()
		s.handle(fc.(*net.UnixConn))
		out, _ := io.ReadAll(uc)
		if !strings.HasPrefix(string(out), `{"error":`) {
			t.Fatalf("reply %q", out)
		}
	})
}
