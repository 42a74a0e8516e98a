package qemu

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVirtiofsdArgs(t *testing.T) {
	for _, tc := range []struct {
		owner string
		want  string
	}{
		{"", "--fd=3 -o source=/srv -o cache=auto -o sandbox=namespace -o log_level=err"},
		{"0:0", "--fd=3 -o source=/srv -o cache=auto -o sandbox=namespace -o log_level=err"},
		{"1000:1000", "--fd=3 -o source=/srv -o cache=auto -o sandbox=namespace -o log_level=err --rlimit-nofile=0"},
	} {
		if got := strings.Join(virtiofsdArgs(FS{Source: "/srv", Owner: tc.owner}), " "); got != tc.want {
			t.Errorf("owner %q: %s, want %s", tc.owner, got, tc.want)
		}
	}
	if got := VirtiofsdLine(FS{Source: "/srv"}); !strings.HasPrefix(got, VirtiofsdPath+" --fd=3 ") {
		t.Errorf("line %s", got)
	}
}

// TestStartVirtiofsd starts a stand-in for virtiofsd that says who it
// runs as and what it was given: root itself, or root of a user
// namespace mapped to the folder's owner alone, in no other group; its listening socket on
// descriptor 3, whose path is gone once ops has connected; ops's end of
// the connection handed back; stopped and reaped at once on failure, and
// let quit by itself after a VM.
func TestStartVirtiofsd(t *testing.T) {
	dir := t.TempDir()
	// The folder's owner runs the stand-in, and it writes there.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	fake := filepath.Join(dir, "virtiofsd")
	script := fmt.Sprintf("#!/bin/sh\n{ id -u; cat /proc/self/uid_map; id -G; readlink /proc/self/fd/3; echo \"$@\"; } > %s.tmp; mv %s.tmp %s\n[ \"$1\" = --fd=3 ] && sleep \"${SLEEP:-60}\"\n", out, out, out)
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("%d:%d", os.Geteuid(), os.Getegid())
	if os.Geteuid() == 0 {
		user = "1000:1000"
	}
	deep := filepath.Join(dir, strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, owner, uidMap, socket string
	}{
		{"as ops's user", "", "0 0 4294967295", dir},
		{"as the folder's owner", user, fmt.Sprintf("0 %s 1", strings.Split(user, ":")[0]), dir},
		{"a socket path longer than an address", user, fmt.Sprintf("0 %s 1", strings.Split(user, ":")[0]), deep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner == "" && os.Geteuid() != 0 {
				t.Skip("ops's own user is root's here only when ops runs as root")
			}
			os.Remove(out)
			s := FS{Source: dir, Tag: "0", Socket: filepath.Join(tc.socket, "fs0.sock"), Owner: tc.owner, Binary: fake}
			v, conn, err := startVirtiofsd(s, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := os.Stat(s.Socket); !os.IsNotExist(err) {
				t.Errorf("socket path left: %v", err)
			}
			var b []byte
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if b, err = os.ReadFile(out); err == nil {
					break
				}
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) != 5 || lines[0] != "0" || strings.Join(strings.Fields(lines[1]), " ") != tc.uidMap ||
				(tc.owner != "" && lines[2] != "0") || !strings.HasPrefix(lines[3], "socket:") || lines[4] != strings.Join(virtiofsdArgs(s), " ") {
				t.Errorf("virtiofsd saw\n%s", b)
			}
			start := time.Now()
			stopFS([]virtiofsd{v}, nil, true)
			if time.Since(start) > virtiofsdQuitGrace/2 || v.cmd.ProcessState == nil {
				t.Errorf("not stopped at once: %v, %v", time.Since(start), v.cmd.ProcessState)
			}
		})
	}
	t.Run("quits by itself", func(t *testing.T) {
		t.Setenv("SLEEP", "0.1")
		v, conn, err := startVirtiofsd(FS{Source: dir, Socket: filepath.Join(dir, "fs1.sock"), Binary: fake, Owner: user}, nil)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		v.stop(false)
		if st := v.cmd.ProcessState; st == nil || !st.Success() {
			t.Errorf("state %v", st)
		}
	})
	for _, tc := range []struct{ name, err string }{
		{"no binary", "needs virtiofsd"},
		{"long socket name", "longer than a socket address holds"},
		{"relative socket path", "no socket path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := FS{Source: dir, Socket: filepath.Join(dir, "fs.sock"), Binary: fake}
			switch tc.name {
			case "no binary":
				s.Binary = filepath.Join(dir, "none")
			case "long socket name":
				s.Socket = filepath.Join(dir, strings.Repeat("x", maxSocketPath))
			case "relative socket path":
				s.Socket = "fs.sock"
			}
			_, _, err := startFS(VM{FS: []FS{s}}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line with %q", err, tc.err)
			}
		})
	}
}

// TestWatchShare: a virtiofsd that quits while QEMU runs stops QEMU, and
// the result says which folder; one that quits after QEMU (as every VM
// ends) is no failure.
func TestWatchShare(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "virtiofsd")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nsleep \"$SLEEP\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name            string
		qemu, virtiofsd string // how long each runs
		failed          bool
	}{
		{"virtiofsd quits first", "30", "0.1", true},
		{"QEMU exits first", "0.1", "0.3", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SLEEP", tc.virtiofsd)
			v, conn, err := startVirtiofsd(FS{Source: dir, Socket: filepath.Join(dir, "fs.sock"), Binary: fake}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			p, err := start([]string{"sleep", tc.qemu}, PagesDefault, io.Discard, io.Discard, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			p.fs = []virtiofsd{v}
			go p.watchShare(v)
			r := p.Wait(context.Background())
			_, exitErr := r.GuestExitCode()
			if got := r.ShareFailed != ""; got != tc.failed || (tc.failed && (r.ShareFailed != dir || !strings.Contains(exitErr.Error(), "virtiofsd, which shares "+dir))) {
				t.Fatalf("ShareFailed %q, exit error %v; want failed %v", r.ShareFailed, exitErr, tc.failed)
			}
		})
	}
}
