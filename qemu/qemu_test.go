package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	"golang.org/x/sys/unix"
)

func TestParsePorts(t *testing.T) {
	cases := []struct {
		in   []string
		want string
		err  string
	}{
		{[]string{"8080"}, "tcp 127.0.0.1:8080 -> guest 8080", ""},
		{[]string{"8081:80"}, "tcp 127.0.0.1:8081 -> guest 80", ""},
		{[]string{"0.0.0.0:8080:8080"}, "tcp 0.0.0.0:8080 -> guest 8080", ""},
		{[]string{"[::1]:8080:80"}, "tcp ::1:8080 -> guest 80", ""},
		{[]string{"9000-9002"}, "tcp 127.0.0.1:9000 -> guest 9000|tcp 127.0.0.1:9001 -> guest 9001|tcp 127.0.0.1:9002 -> guest 9002", ""},
		{[]string{"8000-8001:9000-9001"}, "tcp 127.0.0.1:8000 -> guest 9000|tcp 127.0.0.1:8001 -> guest 9001", ""},
		{[]string{"80,443", "22"}, "tcp 127.0.0.1:80 -> guest 80|tcp 127.0.0.1:443 -> guest 443|tcp 127.0.0.1:22 -> guest 22", ""},
		{[]string{"0"}, "", "not a port number"},
		{[]string{"70000"}, "", "not a port number"},
		{[]string{"http"}, "", "not a port number"},
		{[]string{"8080-80"}, "tcp 127.0.0.1:8080 -> guest 80", ""},     // nanovms/ops: host 8080 to guest 80
		{[]string{"[::1]:9002-9000"}, "tcp ::1:9002 -> guest 9000", ""}, // ... with an address
		{[]string{"9002-9000:80"}, "", "backwards"},                     // a range on one side of HOST:GUEST stays a range
		{[]string{"8080-80,8443-443"}, "tcp 127.0.0.1:8080 -> guest 80|tcp 127.0.0.1:8443 -> guest 443", ""},
		{[]string{"8000-8002:9000-9001"}, "", "differ in length"},
		{[]string{"1.2.3:80:80"}, "", "not an IP"},
		{[]string{"80", "80"}, "", "forwarded twice"},
		{[]string{"a:b:c:d"}, "", "use PORT"},
	}
	for _, tc := range cases {
		got, err := ParsePorts(tc.in, "tcp")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.in, err)
			continue
		}
		var s []string
		for _, f := range got {
			s = append(s, f.String())
		}
		if strings.Join(s, "|") != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.in, strings.Join(s, "|"), tc.want)
		}
	}
}

func TestPortNotes(t *testing.T) {
	cases := []struct {
		in   []string
		want int
	}{
		{[]string{"8080-80"}, 1},
		{[]string{"8080-80,8443-443", "22"}, 2},
		{[]string{"[::1]:8080-80"}, 1},
		{[]string{"9000-9002", "8081:80", "0.0.0.0:80:80", "nope"}, 0},
	}
	for _, tc := range cases {
		got := PortNotes(tc.in, "-p")
		if len(got) != tc.want {
			t.Errorf("%v: %d notes %q, want %d", tc.in, len(got), got, tc.want)
		}
		for _, n := range got {
			if !strings.Contains(n, "nanovms/ops") || !strings.HasPrefix(n, "ops: -p ") {
				t.Errorf("%v: note %q", tc.in, n)
			}
		}
	}
}

func TestDecideAccel(t *testing.T) {
	ok := func() error { return nil }
	denied := func() error { return errors.New("permission denied") }
	vmx := "processor\t: 0\nflags\t\t: fpu vme vmx sse\n"
	none := "processor\t: 0\nflags\t\t: fpu vme sse hypervisor\n"
	cases := []struct {
		name string
		p    AccelProbe
		want Accel
	}{
		{"kvm works", AccelProbe{CPUInfo: vmx, OpenKVM: ok, Allow: true}, KVM},
		{"svm works", AccelProbe{CPUInfo: "flags: svm\n", OpenKVM: ok, Allow: true}, KVM},
		{"nested PVM: /dev/kvm opens but no vmx/svm", AccelProbe{CPUInfo: none, OpenKVM: ok, Allow: true}, TCG},
		{"no /dev/kvm access", AccelProbe{CPUInfo: vmx, OpenKVM: denied, Allow: true}, TCG},
		{"no /dev/kvm", AccelProbe{CPUInfo: vmx, Allow: true}, TCG},
		{"--accel=false", AccelProbe{CPUInfo: vmx, OpenKVM: ok, Allow: false}, TCG},
		{"vmx only in another field", AccelProbe{CPUInfo: "model name: vmx-like\nflags: sse\n", OpenKVM: ok, Allow: true}, TCG},
		{"arm64 guest on an x86 host", AccelProbe{CPUInfo: vmx, OpenKVM: ok, Allow: true, Host: arch.AMD64, Guest: arch.ARM64}, TCG},
		{"x86 guest on an arm64 host", AccelProbe{CPUInfo: "Features: fp asimd\n", OpenKVM: ok, Allow: true, Host: arch.ARM64, Guest: arch.AMD64}, TCG},
		{"arm64 host: no vmx flag to look for", AccelProbe{CPUInfo: "Features: fp asimd\n", OpenKVM: ok, Allow: true, Host: arch.ARM64, Guest: arch.ARM64}, KVM},
		{"arm64 host without /dev/kvm", AccelProbe{CPUInfo: "Features: fp asimd\n", OpenKVM: denied, Allow: true, Host: arch.ARM64, Guest: arch.ARM64}, TCG},
	}
	for _, tc := range cases {
		got, why := DecideAccel(tc.p)
		if got != tc.want || why == "" {
			t.Errorf("%s: %s (%s), want %s", tc.name, got, why, tc.want)
		}
	}
	// This machine: whatever it is, the answer must come without error,
	// and where the CPU shows no vmx/svm it must be TCG.
	p := HostProbe(true)
	if a, _ := DecideAccel(p); !hasVirtFlag(p.CPUInfo) && a != TCG {
		t.Fatalf("host without vmx/svm chose %s", a)
	}
}

func TestVMArgs(t *testing.T) {
	fw := []Forward{{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 8080, GuestPort: 80}, {Proto: "udp", HostIP: "0.0.0.0", HostPort: 53, GuestPort: 5353}}
	cases := []struct {
		name string
		vm   VM
		want []string // each must appear, in order, as one argv element or a run of them
		not  []string
		err  string
	}{
		{"microvm nanos", VM{Kernel: "k.img", Drives: []Drive{{File: "d.img", Snapshot: true}}, DebugExit: true, RNG: true, Net: Net{Mode: "user", Forwards: fw}},
			[]string{"qemu-system-x86_64", "-nodefaults", "-accel tcg", "-cpu max,erms=off,fsrm=off", "-m 256M", "-smp 1",
				"-machine microvm,rtc=on,ioapic2=off", "-global virtio-mmio.force-legacy=false", "-kernel k.img",
				"-drive if=none,id=hd0,format=raw,file=d.img,snapshot=on", "-device virtio-blk-device,drive=hd0",
				"-netdev user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:0.0.0.0:53-:5353", "-device virtio-net-device,netdev=n0",
				"-device virtio-rng-device", "-device isa-debug-exit"}, []string{"-cpu host"}, ""},
		{"q35 full disk", VM{Machine: Q35, Drives: []Drive{{File: "d.img"}}, Accel: KVM, MemoryMB: 2048, CPUs: 2, Net: Net{Mode: "user"}},
			[]string{"-accel kvm", "-cpu host", "-m 2048M", "-smp 2", "-machine q35", "-device virtio-scsi-pci,id=scsi0",
				"-drive if=none,id=hd0,format=raw,file=d.img", "-device scsi-hd,bus=scsi0.0,drive=hd0", "-device virtio-net-pci,netdev=n0"},
			[]string{"-cpu max", "-kernel", "snapshot=on"}, ""},
		{"linux guest", VM{Kernel: "vmlinux", Initrd: "i.cpio", Append: "console=ttyS0", CPUs: 2, Net: Net{Mode: "none"}},
			[]string{"-accel tcg,thread=multi", "-machine microvm,rtc=on,ioapic2=off", "-kernel vmlinux", "-initrd i.cpio", "-append console=ttyS0"}, []string{"-netdev"}, ""},
		{"memfd RAM", VM{Kernel: "k", MemoryMB: 512, Pages: PagesMemfdRAM},
			[]string{"-m 512M", "-object memory-backend-memfd,id=ram0,size=512M", "-machine microvm,rtc=on,ioapic2=off,memory-backend=ram0"}, nil, ""},
		{"memfd RAM q35", VM{Machine: Q35, Pages: PagesMemfdRAM},
			[]string{"-m 256M", "-object memory-backend-memfd,id=ram0,size=256M", "-machine q35,memory-backend=ram0"}, nil, ""},
		{"virtio-fs: shared RAM, the connection's descriptor", VM{Kernel: "k", MemoryMB: 512, Pages: PagesSmall, FS: []FS{{Source: "/srv", Tag: "0"}, {Source: "/etc/app", Tag: "1"}}},
			[]string{"-m 512M", "-object memory-backend-memfd,id=ram0,size=512M,share=on", "-machine microvm,rtc=on,ioapic2=off,memory-backend=ram0",
				"-chardev socket,id=vfs0,fd=3", "-device vhost-user-fs-device,chardev=vfs0,tag=0",
				"-chardev socket,id=vfs1,fd=4", "-device vhost-user-fs-device,chardev=vfs1,tag=1"}, []string{"/srv"}, ""},
		{"virtio-fs after passt's and the channel's descriptors", VM{Kernel: "k", Channel: "c", Net: Net{Mode: "user", Passt: "passt"}, FS: []FS{{Source: "/srv", Tag: "0"}}},
			[]string{"-chardev socket,id=vfs0,fd=5", "-netdev stream,id=n0,addr.type=fd,addr.str=3", "-chardev socket,id=ops0,fd=4"}, nil, ""},
		{"virtio-fs on arm64 virt is PCI", VM{Arch: arch.ARM64, Kernel: "k", FS: []FS{{Source: "/srv", Tag: "data"}}},
			[]string{"-object memory-backend-memfd,id=ram0,size=256M,share=on", "-machine virt,gic-version=2,highmem=off,memory-backend=ram0",
				"-chardev socket,id=vfs0,fd=3", "-device vhost-user-fs-pci,chardev=vfs0,tag=data"}, nil, ""},
		{"virtio-fs tag with a comma", VM{Kernel: "k", FS: []FS{{Source: "/srv", Tag: "a,b"}}}, nil, nil, "no commas"},
		{"virtio-fs tag too long", VM{Kernel: "k", FS: []FS{{Source: "/srv", Tag: strings.Repeat("t", 37)}}}, nil, nil, "1 to 36 characters"},
		{"tap", VM{Kernel: "k", Net: Net{Mode: "tap", Tap: "tap0", MAC: "52:54:00:12:34:56"}},
			[]string{"-netdev tap,id=n0,ifname=tap0,script=no,downscript=no", "-device virtio-net-device,netdev=n0,mac=52:54:00:12:34:56"}, nil, ""},
		{"guestfwd", VM{Kernel: "k", Net: Net{Mode: "user", GuestFwd: []GuestFwd{{IP: "10.0.2.100", Port: 80, Cmd: "/bin/ops proxy 127.0.0.1:9000"}}}},
			[]string{"-netdev user,id=n0,guestfwd=tcp:10.0.2.100:80-cmd:/bin/ops proxy 127.0.0.1:9000"}, nil, ""},
		{"passt", VM{Kernel: "k", Net: Net{Mode: "user", Passt: "/usr/bin/passt", Forwards: fw}},
			[]string{"-netdev stream,id=n0,addr.type=fd,addr.str=3", "-device virtio-net-device,netdev=n0"}, []string{"-netdev user", "hostfwd"}, ""},
		{"passt cannot take guest forwards", VM{Kernel: "k", Net: Net{Mode: "user", Passt: "passt", GuestFwd: []GuestFwd{{IP: "10.0.2.100", Port: 80, Cmd: "p"}}}},
			nil, nil, "guest forwards need"},
		{"slirp restricted", VM{Kernel: "k", Net: Net{Mode: "user", Restrict: true, Forwards: fw[:1]}},
			[]string{"-netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80"}, nil, ""},
		{"sandbox", VM{Kernel: "k", Sandbox: true},
			[]string{"-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"}, nil, ""},
		{"unprivileged: descriptors for paths", VM{Kernel: "k", Initrd: "i", Sandbox: true, RunAs: "1000:1000", QMP: "/q.sock",
			Drives: []Drive{{File: "d.img", Snapshot: true}}, Net: Net{Mode: "tap", Tap: "tap0"},
			fds: &passedFDs{drives: map[int][]int{0: {4}}, paths: map[string]int{"k": 5, "i": 6}, tapFD: 7, qmpFD: 8}},
			[]string{"-kernel /proc/self/fd/5", "-initrd /proc/self/fd/6", "-add-fd fd=4,set=1", "-drive if=none,id=hd0,format=raw,file=/dev/fdset/1,snapshot=on",
				"-netdev tap,id=n0,fd=7", "-chardev socket,id=qmp0,fd=8,server=on,wait=off", "-mon chardev=qmp0,mode=control",
				"-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"}, []string{"-runas", "ifname", "-qmp", "d.img"}, ""},
		{"a guestfwd command may be spawned, in a session of its own", VM{Kernel: "k", Sandbox: true, Net: Net{Mode: "user", GuestFwd: []GuestFwd{{IP: "10.0.2.100", Port: 80, Cmd: "p"}}}},
			[]string{"-sandbox on,obsolete=deny,resourcecontrol=deny"}, []string{"spawn", "elevateprivileges"}, ""},
		{"volume read-only", VM{Kernel: "k", Drives: []Drive{{File: "v.raw", ReadOnly: true}}},
			[]string{"-drive if=none,id=hd0,format=raw,file=v.raw,readonly=on"}, nil, ""},
		{"qmp and gdb", VM{Kernel: "k", QMP: "/tmp/q.sock", GdbPort: 1234, Binary: "/opt/qemu"},
			[]string{"/opt/qemu", "-qmp unix:/tmp/q.sock,server=on,wait=off", "-gdb tcp::1234"}, nil, ""},
		{"uefi q35, a qcow2 disk", VM{Machine: Q35, Firmware: "/fw/OVMF.fd", Drives: []Drive{{File: "d.qcow2", Format: "qcow2", Snapshot: true}}},
			[]string{"-machine q35", "-bios /fw/OVMF.fd", "-drive if=none,id=hd0,format=qcow2,file=d.qcow2,snapshot=on"}, []string{"-kernel"}, ""},
		{"firmware needs q35", VM{Kernel: "k", Firmware: "/fw/OVMF.fd"}, nil, nil, "boots a q35 machine, not microvm"},
		{"microvm needs a kernel", VM{}, nil, nil, "no kernel"},
		{"bad machine", VM{Machine: "pc-i440fx"}, nil, nil, "unknown machine"},
		{"tap needs a name", VM{Kernel: "k", Net: Net{Mode: "tap"}}, nil, nil, "tap device name"},
		{"comma in disk path", VM{Kernel: "k", Drives: []Drive{{File: "a,b"}}}, nil, nil, "comma"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args, err := tc.vm.Args()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			joined := " " + strings.Join(args, " ") + " "
			pos := 0
			for _, w := range tc.want {
				i := strings.Index(joined[pos:], " "+w+" ")
				if i < 0 {
					t.Fatalf("%q missing (or out of order) in\n%s", w, joined)
				}
				pos += i + 1
			}
			for _, n := range tc.not {
				if strings.Contains(joined, " "+n) {
					t.Fatalf("%q present in\n%s", n, joined)
				}
			}
			if strings.Count(joined, " -cpu ") != 1 {
				t.Fatalf("-cpu given %d times", strings.Count(joined, " -cpu "))
			}
		})
	}
}

func TestPasstArgs(t *testing.T) {
	base := "--foreground --quiet --one-off --fd 3 --address 10.0.2.15 --netmask 24 --gateway 10.0.2.2 --no-map-gw --dns-forward 10.0.2.3 --dns 10.0.2.3"
	cases := []struct {
		name string
		fw   []Forward
		want string
	}{
		{"no forwards", nil, base + " --ipv4-only"},
		{"loopback and all addresses", []Forward{{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 8080, GuestPort: 80}, {Proto: "udp", HostIP: "0.0.0.0", HostPort: 53, GuestPort: 5353}},
			base + " --ipv4-only --tcp-ports 127.0.0.1/8080:80 --udp-ports 53:5353"},
		{"an IPv6 address keeps IPv6 on", []Forward{{Proto: "tcp", HostIP: "::1", HostPort: 8080, GuestPort: 80}},
			base + " --tcp-ports ::1/8080:80"},
	}
	for _, tc := range cases {
		got := strings.Join(passtArgs(Net{Mode: "user", Passt: "passt", Forwards: tc.fw}, 3), " ")
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestPasstFailed(t *testing.T) {
	in := "Failed to send 31 bytes to syslog\nCouldn't bind TCP port 8080\nFailed to send 7 bytes to syslog\n"
	if got := passtFailed(in); got != "Couldn't bind TCP port 8080" {
		t.Errorf("got %q", got)
	}
}

func TestGuestExitCode(t *testing.T) {
	cases := []struct {
		r    Result
		code int
		err  string
	}{
		{Result{Status: 1}, 0, ""},
		{Result{Status: 7}, 3, ""},
		{Result{Status: 255}, 127, ""},
		// A code above 127 loses its top bit to the process status; the
		// guest's own report of it, agreeing with the low 7 bits, wins.
		{Result{Status: 255, Reported: intp(255)}, 255, ""},
		{Result{Status: 145, Reported: intp(200)}, 200, ""},
		{Result{Status: 7, Reported: intp(4)}, 3, ""},
		{Result{Status: 0}, 0, "without reporting"},
		{Result{Status: 1, Stderr: "qemu-system-x86_64: -drive file=x: Could not open 'x'\n"}, 0, "QEMU failed"},
		{Result{Status: 1, Stderr: "qemu-system-x86_64: warning: host doesn't support requested feature\n"}, 0, ""},
		{Result{Status: -1}, 0, "signal"},
		{Result{Status: 2}, 0, "status 2"},
		{Result{Status: -1, NetFailed: "Couldn't bind"}, 0, "network (passt) stopped"},
	}
	for _, tc := range cases {
		code, err := tc.r.GuestExitCode()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: error %v, want %q", tc.r, err, tc.err)
			}
			continue
		}
		if err != nil || code != tc.code {
			t.Errorf("%+v: %d %v, want %d", tc.r, code, err, tc.code)
		}
	}
}

func intp(v int) *int { return &v }

func TestTSCkHz(t *testing.T) {
	if got := TSCkHz("processor: 0\ncpu MHz\t\t: 2096.032\n"); got != 2096032 {
		t.Fatalf("got %d", got)
	}
	if got := TSCkHz("flags: sse\n"); got != 0 {
		t.Fatalf("got %d", got)
	}
}

func TestCheckFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	fw := []Forward{{Proto: "tcp", HostIP: "127.0.0.1", HostPort: port, GuestPort: 80}}
	if err := CheckFree(fw); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("host port %d", port)) {
		t.Fatalf("busy port: %v", err)
	}
	l.Close()
	if err := CheckFree(fw); err != nil {
		t.Fatalf("free port: %v", err)
	}
}

func TestShellLine(t *testing.T) {
	cases := []struct {
		in   []string
		want string
	}{
		{[]string{"qemu", "-m", "256M", "-drive", "if=none,file=/a/b.img"}, "qemu -m 256M -drive if=none,file=/a/b.img"},
		{[]string{"-append", "console=ttyS0 quiet"}, "-append 'console=ttyS0 quiet'"},
		{[]string{"it's", ""}, `'it'\''s' ''`},
		{[]string{"cmd:/bin/ops proxy 127.0.0.1:9000", "$HOME"}, "'cmd:/bin/ops proxy 127.0.0.1:9000' '$HOME'"},
	}
	for _, tc := range cases {
		if got := ShellLine(tc.in); got != tc.want {
			t.Errorf("ShellLine(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestDropLines: QEMU's stop notice and virtiofsd's hangup line are
// left out of what the user sees, line by line across writes.
func TestDropLines(t *testing.T) {
	cases := []struct {
		drop   func([]byte) bool
		writes []string
		flush  bool
		want   string
	}{
		{stopNotice, []string{"qemu-system-x86_64: terminating on signal 15 from pid 7 (ops)\n"}, false, ""},
		{stopNotice, []string{"qemu-system-x86_64: -netdev user: Could not set up host forwarding rule\n"}, false, "qemu-system-x86_64: -netdev user: Could not set up host forwarding rule\n"},
		{stopNotice, []string{"warn", "ing: a\nqemu-system-x86_64: termin", "ating on signal 2\nend\n"}, false, "warning: a\nend\n"},
		{stopNotice, []string{"no newline yet"}, false, ""},
		{stopNotice, []string{"no newline yet"}, true, "no newline yet"},
		{stopNotice, []string{"virtio_loop: Unexpected poll revents 11\n"}, false, "virtio_loop: Unexpected poll revents 11\n"},
		{hangup, []string{"[2026-12-06] [ID: 00000794] virtio_loop: Unexpected poll revents 11\n"}, false, ""},
		{hangup, []string{"unshare(CLONE_NEWPID | CLONE_NEWNS): Operation not permitted\n"}, false, "unshare(CLONE_NEWPID | CLONE_NEWNS): Operation not permitted\n"},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		d := &dropLines{w: &out, drop: tc.drop}
		for _, w := range tc.writes {
			if n, err := d.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", w, n, err)
			}
		}
		if tc.flush {
			d.flush()
		}
		if out.String() != tc.want {
			t.Errorf("%q: got %q, want %q", tc.writes, out.String(), tc.want)
		}
	}
}

// TestStartSmallPages checks that a process started with PagesSmall runs
// without transparent huge pages (the kernel shows it from Linux 5.0 on).
func TestStartSmallPages(t *testing.T) {
	var out bytes.Buffer
	p, err := Start([]string{"grep", "THP_enabled", "/proc/self/status"}, PagesSmall, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res := p.Wait(context.Background()); res.Status != 0 {
		t.Skipf("SKIP: this kernel does not show THP_enabled in /proc/PID/status (grep: %d)", res.Status)
	}
	if got := strings.Join(strings.Fields(out.String()), " "); got != "THP_enabled: 0" {
		t.Errorf("child status says %q, want THP_enabled: 0", got)
	}
}

func TestFindOVMF(t *testing.T) {
	dir := t.TempDir()
	fw := filepath.Join(dir, "OVMF.fd")
	if err := os.WriteFile(fw, []byte("fw"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := FindOVMF([]string{filepath.Join(dir, "none.fd"), dir, fw}); err != nil || p != fw {
		t.Errorf("FindOVMF = %q, %v; want %q", p, err, fw)
	}
	if _, err := FindOVMF([]string{filepath.Join(dir, "none.fd")}); err == nil || !strings.Contains(err.Error(), "apt-get install ovmf") {
		t.Errorf("FindOVMF with none found: %v", err)
	}
}

func TestUnprivileged(t *testing.T) {
	fwd := Net{Mode: "user", GuestFwd: []GuestFwd{{IP: "10.0.2.100", Port: 80, Cmd: "p"}}}
	for _, tc := range []struct {
		vm   VM
		want bool
	}{
		{VM{}, false},
		{VM{RunAs: "65534:65534"}, true},
		{VM{RunAs: "65534:65534", Net: fwd}, false}, // the guestfwd command runs ops
	} {
		if got := tc.vm.Unprivileged(); got != tc.want {
			t.Errorf("%+v: %v", tc.vm, got)
		}
	}
	if c, err := credential("1000:1001"); err != nil || c.Uid != 1000 || c.Gid != 1001 {
		t.Errorf("credential: %+v %v", c, err)
	}
	if _, err := credential("nobody"); err == nil {
		t.Error("credential(nobody): no error")
	}
}

// TestOpenForQEMU: disks open with the access QEMU needs, the kernel and
// initrd become /proc/self/fd paths, and the QMP socket is listening at
// its path before QEMU starts.
func TestOpenForQEMU(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"k", "i", "d.img", "v.raw"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	vm := VM{Kernel: filepath.Join(dir, "k"), Initrd: filepath.Join(dir, "i"), QMP: filepath.Join(dir, "q.sock"), RunAs: "65534:65534",
		Drives: []Drive{{File: filepath.Join(dir, "d.img"), Snapshot: true}, {File: filepath.Join(dir, "v.raw")}}}
	passt, _ := os.Open(os.DevNull)
	if err := openForQEMU(&vm, []*os.File{passt}); err != nil {
		t.Fatal(err)
	}
	defer vm.fds.close()
	args, err := vm.Args()
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(args, " ")
	for _, w := range []string{"-add-fd fd=4,set=1", "-add-fd fd=5,set=2 -add-fd fd=6,set=2", "-kernel /proc/self/fd/7", "-initrd /proc/self/fd/8", "socket,id=qmp0,fd=9,server=on"} {
		if !strings.Contains(joined, w) {
			t.Errorf("%q missing in %s", w, joined)
		}
	}
	if len(vm.fds.files) != 7 {
		t.Errorf("%d files passed, want 7", len(vm.fds.files))
	}
	if flags, _ := unix.FcntlInt(vm.fds.files[3].Fd(), unix.F_GETFL, 0); flags&unix.O_ACCMODE != unix.O_RDWR {
		t.Errorf("the volume is not open for writing")
	}
	c, err := net.Dial("unix", vm.QMP)
	if err != nil {
		t.Fatalf("QMP socket: %v", err)
	}
	c.Close()
}
