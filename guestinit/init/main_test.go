//go:build linux && (amd64 || arm64)

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opsdev/ops/guestinit"
	"github.com/opsdev/ops/netlink"
	"golang.org/x/sys/unix"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ws    unix.WaitStatus // as wait4 gives it
		code  int
		ended bool
	}{
		{"exit 0", 0, 0, true},
		{"exit 3", 3 << 8, 3, true},
		{"exit 255", 255 << 8, 255, true},
		{"killed by SIGKILL", 9, 9, true},
		{"killed by SIGTERM", 15, 15, true},
		{"killed by SIGSEGV, core dumped", 0x80 | 11, 11, true},
		{"stopped by SIGSTOP", 19<<8 | 0x7f, 0, false},
		{"continued", 0xffff, 0, false},
	} {
		code, ended := exitCode(tc.ws)
		if code != tc.code || ended != tc.ended {
			t.Errorf("%s: code %d, ended %v; want %d, %v", tc.name, code, ended, tc.code, tc.ended)
		}
	}
}

func TestDebugOn(t *testing.T) {
	for cmdline, want := range map[string]bool{
		"console=ttyS0 quiet ops.debug=1\n": true,
		"ops.debug=1 console=ttyS0":         true,
		"console=ttyS0 quiet\n":             false,
		"console=ttyS0 ops.debug=0":         false,
		"":                                  false,
	} {
		if got := debugOn([]byte(cmdline)); got != want {
			t.Errorf("debugOn(%q) = %v", cmdline, got)
		}
	}
}

func TestPowerPressed(t *testing.T) {
	event := func(typ, code uint16, value int32) []byte {
		ev := make([]byte, 24) // the 16-byte time stays zero
		binary.LittleEndian.PutUint16(ev[16:], typ)
		binary.LittleEndian.PutUint16(ev[18:], code)
		binary.LittleEndian.PutUint32(ev[20:], uint32(value))
		return ev
	}
	for _, tc := range []struct {
		name string
		ev   []byte
		want bool
	}{
		{"power button down", event(1, 116, 1), true},
		{"power button up", event(1, 116, 0), false},
		{"power button held (repeat)", event(1, 116, 2), false},
		{"another key", event(1, 115, 1), false},
		{"a sync event", event(0, 0, 0), false},
	} {
		if got := powerPressed(tc.ev); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
}

func TestEthConfig(t *testing.T) {
	for _, tc := range []struct {
		addr, gw        string
		wantPfx, wantGW string // wantGW "" for no default route; wantPfx "" for an error
	}{
		{"10.0.2.15/24", "10.0.2.2", "10.0.2.15/24", "10.0.2.2"},
		{"192.168.7.9/30", "", "192.168.7.9/30", ""},
		{"10.0.2.15/24", "fe80::1", "10.0.2.15/24", ""},
		{"10.0.2.15/24", "gateway", "10.0.2.15/24", ""},
		{"10.0.2.15", "10.0.2.2", "", ""},
		{"fd00::2/64", "fd00::1", "", ""},
		{"", "", "", ""},
	} {
		pfx, gw, err := ethConfig(guestinit.Net{Address: tc.addr, Gateway: tc.gw})
		if tc.wantPfx == "" {
			if err == nil || !strings.Contains(err.Error(), "not an IPv4 CIDR") {
				t.Errorf("%q: %v, want an error", tc.addr, err)
			}
			continue
		}
		gotGW := ""
		if gw.IsValid() {
			gotGW = gw.String()
		}
		if err != nil || pfx.String() != tc.wantPfx || gotGW != tc.wantGW {
			t.Errorf("%q via %q: %s via %q, %v; want %s via %q", tc.addr, tc.gw, pfx, gotGW, err, tc.wantPfx, tc.wantGW)
		}
	}
}

func TestWithLease(t *testing.T) {
	manifest := guestinit.Net{DHCP: true, DNS: []string{"10.0.2.3"}}
	lease := &netlink.Lease{Addr: netip.MustParsePrefix("192.168.1.50/24"), Gateway: netip.MustParseAddr("192.168.1.1"),
		DNS: []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("9.9.9.9")}}
	n := withLease(manifest, lease)
	if !n.DHCP || n.Address != "192.168.1.50/24" || n.Gateway != "192.168.1.1" || !slices.Equal(n.DNS, []string{"192.168.1.1", "9.9.9.9"}) {
		t.Errorf("with the lease's name servers: %+v", n)
	}
	lease.DNS = nil
	if n := withLease(manifest, lease); !slices.Equal(n.DNS, []string{"10.0.2.3"}) {
		t.Errorf("a lease without name servers keeps the manifest's: %v", n.DNS)
	}
	if pfx, gw, err := ethConfig(n); err != nil || pfx != lease.Addr || gw != lease.Gateway {
		t.Errorf("the lease's network read back: %s via %s, %v", pfx, gw, err)
	}
}

func TestMountFlags(t *testing.T) {
	if f := mountFlags(guestinit.Mount{Label: "data", Path: "/data"}); f != unix.MS_NOATIME {
		t.Errorf("read-write: %#x", f)
	}
	if f := mountFlags(guestinit.Mount{Label: "data", Path: "/data", ReadOnly: true}); f != unix.MS_NOATIME|unix.MS_RDONLY {
		t.Errorf("read-only: %#x", f)
	}
}

func TestVolumeMounts(t *testing.T) {
	table := `rootfs / rootfs rw 0 0
proc /proc proc rw,nosuid,nodev,relatime 0 0
devtmpfs /dev devtmpfs rw,nosuid,size=118612k,nr_inodes=29653,mode=755 0 0
tmpfs /tmp tmpfs rw,nosuid,nodev 0 0
/dev/vda /data ext4 rw,noatime 0 0
/dev/sda1 /mnt ext4 rw,relatime 0 0
/dev/vdb /srv/cache ext4 ro,noatime 0 0
/dev/vdc /iso iso9660 ro 0 0
`
	if got, want := volumeMounts(table), []string{"/data", "/srv/cache"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := volumeMounts(""); len(got) != 0 {
		t.Errorf("empty table: %v", got)
	}
}

func TestLabelled(t *testing.T) {
	// superblock is the first 1024 bytes of an ext4 superblock with
	// label, as diskLabelled reads it from byte 1024 of a disk.
	superblock := func(label string) []byte {
		sb := make([]byte, 1024)
		sb[56], sb[57] = 0x53, 0xEF
		copy(sb[120:136], label)
		return sb
	}
	notExt4 := superblock("data")
	notExt4[57] = 0
	for _, tc := range []struct {
		name  string
		sb    []byte
		label string
		want  bool
	}{
		{"its label", superblock("data"), "data", true},
		{"another label", superblock("data"), "logs", false},
		{"a prefix of its label", superblock("database"), "data", false},
		{"a label of 16 bytes", superblock("0123456789abcdef"), "0123456789abcdef", true},
		{"a longer name, cut to 16 bytes as mkfs.ext4 -L cuts it", superblock("taxi_redis-data-"), "taxi_redis-data-aof", true},
		{"not ext4", notExt4, "data", false},
		{"a short read", superblock("data")[:130], "data", false},
		{"nothing read", nil, "data", false},
	} {
		if got := labelled(tc.sb, tc.label); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
}

func TestResolvConf(t *testing.T) {
	if got, want := resolvConf([]string{"10.0.2.3", "1.1.1.1"}), "nameserver 10.0.2.3\nnameserver 1.1.1.1\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseMAC(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"52:54:00:12:34:56\n", "52:54:00:12:34:56"},
		{"52:54:00:AB:cd:EF", "52:54:00:ab:cd:ef"},
		{"", "error"},
		{"52:54:00:12:34", "error"},
		{"not a mac\n", "error"},
	} {
		mac, err := parseMAC("eth0", []byte(tc.in))
		got := "error"
		if err == nil {
			got = net.HardwareAddr(mac).String()
		} else if !strings.Contains(err.Error(), "eth0") {
			t.Errorf("%q: the error does not name the interface: %v", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("parseMAC(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestSnapshotOn(t *testing.T) {
	for cmdline, want := range map[string]bool{
		"console=ttyS0 ops.snapshot=1 quiet\n": true,
		"console=ttyS0 ops.snapshot=1":         true,
		"console=ttyS0 quiet":                  false,
		"ops.snapshot=10":                      false,
		"xops.snapshot=1":                      false,
	} {
		if got := snapshotOn([]byte(cmdline)); got != want {
			t.Errorf("snapshotOn(%q) = %v", cmdline, got)
		}
	}
}

// TestRandPoolInfo: struct rand_pool_info credits every bit of the seed.
func TestRandPoolInfo(t *testing.T) {
	seed := []byte{1, 2, 3, 4, 5}
	b := randPoolInfo(seed)
	if len(b) != 13 || binary.NativeEndian.Uint32(b[0:]) != 40 || binary.NativeEndian.Uint32(b[4:]) != 5 || !bytes.Equal(b[8:], seed) {
		t.Fatalf("randPoolInfo = %v", b)
	}
}

func TestExitChannelOn(t *testing.T) {
	for cmdline, want := range map[string]bool{
		"console=ttyAMA0 rdinit=/.ops/init ops.exitchan=1 quiet\n": true,
		"ops.exitchan=1":           true,
		"console=ttyS0 quiet":      false,
		"ops.exitchan=0":           false,
		"ops.exitchan=10":          false,
		"xops.exitchan=1":          false,
		"ops.snapshot=1 ops.debug": false,
	} {
		if got := exitChannelOn([]byte(cmdline)); got != want {
			t.Errorf("exitChannelOn(%q) = %v", cmdline, got)
		}
	}
}

func TestIsPowerButton(t *testing.T) {
	for name, want := range map[string]bool{
		"Power Button\n":                 true, // ACPI's, amd64
		"gpio-keys\n":                    true, // QEMU virt's, arm64
		"Sleep Button\n":                 false,
		"AT Translated Set 2 keyboard\n": false,
		"":                               false,
	} {
		if got := isPowerButton(name); got != want {
			t.Errorf("isPowerButton(%q) = %v", name, got)
		}
	}
}

func TestAckIn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		acked bool
		rest  string
	}{
		{"the acknowledgement", "ok\n", true, ""},
		{"nothing yet", "", false, ""},
		{"half of it", "o", false, "o"},
		{"without its newline", "ok", false, "ok"},
		{"after another line", "ops-run 1 00\nok\n", true, ""},
		{"another line only", "what\n", false, ""},
		{"another line and half of the acknowledgement", "what\nok", false, "ok"},
		{"a line that starts like it", "okay\n", false, ""},
	} {
		acked, rest := ackIn([]byte(tc.in))
		if acked != tc.acked || string(rest) != tc.rest {
			t.Errorf("%s: ackIn(%q) = %v, %q; want %v, %q", tc.name, tc.in, acked, rest, tc.acked, tc.rest)
		}
	}
}

// TestExchangeExit plays the host on the other end of a socket pair: init
// writes its exit line and returns once the host acknowledges it, however
// the acknowledgement arrives, and gives up when the host says nothing or
// goes away.
func TestExchangeExit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply []string // written one after another, after reading the line; "close" closes
		err   string   // "" for success
	}{
		{"acknowledged", []string{"ok\n"}, ""},
		{"acknowledged in pieces", []string{"o", "k", "\n"}, ""},
		{"another line first", []string{"hello\n", "ok\n"}, ""},
		{"no answer", nil, "timed out"},
		{"something else", []string{"no\n"}, "timed out"},
		{"the host goes away", []string{"close"}, "closed the channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			guest, host := fds[0], os.NewFile(uintptr(fds[1]), "host")
			defer unix.Close(guest)
			defer host.Close()
			got := make(chan string, 1)
			go func() {
				line, _ := bufio.NewReader(host).ReadString('\n')
				got <- line
				for _, r := range tc.reply {
					if r == "close" {
						host.Close()
						return
					}
					host.WriteString(r)
					time.Sleep(10 * time.Millisecond)
				}
			}()
			err = exchangeExit(guest, guestinit.ExitLine(7), time.Now().Add(300*time.Millisecond))
			if line := <-got; line != "exit 7\n" {
				t.Errorf("the host read %q", line)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("%v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("got %v, want an error saying %q", err, tc.err)
			}
		})
	}
}

func TestPowerKeyLine(t *testing.T) {
	be := func(cells ...uint32) []byte {
		b := make([]byte, 0, 4*len(cells))
		for _, c := range cells {
			b = binary.BigEndian.AppendUint32(b, c)
		}
		return b
	}
	// As QEMU's arm64 virt machine describes it: line 3 of the PL061
	// (phandle 0x8004), active high.
	virt := []byte("gpio-keys\x00")
	for _, tc := range []struct {
		name                    string
		compatible, code, gpios []byte
		phandle, line           uint32
		activeLow, ok           bool
	}{
		{"QEMU virt's power key", virt, be(116), be(0x8004, 3, 0), 0x8004, 3, false, true},
		{"active low", virt, be(116), be(0x8004, 5, 1), 0x8004, 5, true, true},
		{"gpio-keys among other compatible strings", []byte("vendor,keys\x00gpio-keys\x00"), be(116), be(7, 0, 0), 7, 0, false, true},
		{"no flags cell", virt, be(116), be(7, 2), 7, 2, false, true},
		{"another key", virt, be(115), be(0x8004, 3, 0), 0, 0, false, false},
		{"not gpio-keys", []byte("gpio-keys-polled\x00"), be(116), be(0x8004, 3, 0), 0, 0, false, false},
		{"a code cut short", virt, []byte{0, 116}, be(0x8004, 3, 0), 0, 0, false, false},
		{"no line", virt, be(116), be(0x8004), 0, 0, false, false},
		{"nothing read", nil, nil, nil, 0, 0, false, false},
	} {
		phandle, line, activeLow, ok := powerKeyLine(tc.compatible, tc.code, tc.gpios)
		if phandle != tc.phandle || line != tc.line || activeLow != tc.activeLow || ok != tc.ok {
			t.Errorf("%s: %#x %d %v %v; want %#x %d %v %v", tc.name, phandle, line, activeLow, ok, tc.phandle, tc.line, tc.activeLow, tc.ok)
		}
	}
}

func TestGPIOPressed(t *testing.T) {
	event := func(id uint32) []byte {
		ev := make([]byte, 48) // struct gpio_v2_line_event
		binary.NativeEndian.PutUint64(ev, 123456789)
		binary.NativeEndian.PutUint32(ev[8:], id)
		binary.NativeEndian.PutUint32(ev[12:], 3) // the line
		return ev
	}
	for _, tc := range []struct {
		name string
		ev   []byte
		want bool
	}{
		{"rising edge", event(unix.GPIO_V2_LINE_EVENT_RISING_EDGE), true},
		{"falling edge", event(unix.GPIO_V2_LINE_EVENT_FALLING_EDGE), false},
		{"a short read", event(unix.GPIO_V2_LINE_EVENT_RISING_EDGE)[:10], false},
	} {
		if got := gpioPressed(tc.ev); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
}

func TestHasVirtioNet(t *testing.T) {
	for _, tc := range []struct {
		name    string
		devices []string // each device's ID
		want    bool
	}{
		{"a disk and a network card", []string{"0x0002", "0x0001"}, true},
		{"a disk and the channel only", []string{"0x0002", "0x0003"}, false},
		{"no devices", nil, false},
	} {
		dir := t.TempDir()
		for i, id := range tc.devices {
			d := filepath.Join(dir, fmt.Sprintf("virtio%d", i))
			os.MkdirAll(d, 0o755)
			os.WriteFile(filepath.Join(d, "device"), []byte(id+"\n"), 0o644)
		}
		if got := hasVirtioNet(dir); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
	if !hasVirtioNet(filepath.Join(t.TempDir(), "gone")) {
		t.Error("an unreadable bus is taken to have no network card")
	}
}
