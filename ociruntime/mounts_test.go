package ociruntime

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/lepton"
	"golang.org/x/sys/unix"
)

func TestPlanMounts(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n10.88.0.5 c1\n"), 0o644)
	cfgDir := filepath.Join(dir, "config")
	os.Mkdir(cfgDir, 0o755)
	secret := filepath.Join(dir, "token")
	os.WriteFile(secret, []byte("s"), 0o600)
	// What podman 4.3 gives every container (--network none has no
	// resolv.conf), and what users add.
	podman := []Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"ro"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts"},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue"},
		{Destination: "/etc/hosts", Type: "bind", Source: hosts, Options: []string{"bind", "rprivate"}},
		{Destination: "/dev/shm", Type: "bind", Source: dir, Options: []string{"bind", "rprivate"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup"},
	}
	tests := []struct {
		name   string
		mounts []Mount
		err    string
		check  func(t *testing.T, im imageMounts)
	}{
		{name: "podman's", mounts: podman, check: func(t *testing.T, im imageMounts) {
			if len(im.Extra) != 1 || im.Extra[0].Path != "/etc/hosts" || !strings.Contains(string(im.Extra[0].Data), "c1") {
				t.Fatalf("extra %+v", im.Extra)
			}
			if len(im.Layers)+len(im.Files) != 0 {
				t.Fatalf("copied %v %v", im.Layers, im.Files)
			}
		}},
		{name: "read-only folder and file", mounts: []Mount{
			{Destination: "/etc/config", Type: "bind", Source: cfgDir, Options: []string{"rbind", "ro"}},
			{Destination: "/var/run/secrets/token", Source: secret, Options: []string{"bind", "ro"}},
		}, check: func(t *testing.T, im imageMounts) {
			if len(im.Layers) != 1 || im.Layers[0].Host != cfgDir || im.Layers[0].Guest != "/etc/config" {
				t.Fatalf("layers %+v", im.Layers)
			}
			if len(im.Files) != 1 || im.Files[0].Guest != "/var/run/secrets/token" {
				t.Fatalf("files %+v", im.Files)
			}
		}},
		{name: "tmpfs", mounts: []Mount{{Destination: "/tmp/x", Type: "tmpfs", Source: "tmpfs"}}, check: func(t *testing.T, im imageMounts) {
			if len(im.Extra) != 1 || im.Extra[0].Kind != opsfs.KindDir || len(im.Notes) != 1 {
				t.Fatalf("extra %+v notes %v", im.Extra, im.Notes)
			}
		}},
		{name: "below /dev: the kernel's", mounts: []Mount{{Destination: "/dev/null", Type: "bind", Source: "/dev/null"}}, check: func(t *testing.T, im imageMounts) {
			if len(im.Notes) != 1 || !strings.Contains(im.Notes[0], "/dev/null") || len(im.Files) != 0 {
				t.Fatalf("notes %v files %v", im.Notes, im.Files)
			}
		}},
		{name: "Kubernetes's termination-log: given back", mounts: []Mount{{Destination: "/dev/termination-log", Type: "bind", Source: secret}}, check: func(t *testing.T, im imageMounts) {
			want := []lepton.Layer{{Host: secret, Guest: "/dev/termination-log"}}
			if !slices.Equal(im.Files, want) || !slices.Equal(im.GiveBack, want) || len(im.Notes) != 0 {
				t.Fatalf("files %v give back %v notes %v", im.Files, im.GiveBack, im.Notes)
			}
		}},
		{name: "writable folder: shared", mounts: []Mount{{Destination: "/data", Type: "bind", Source: cfgDir, Options: []string{"rbind", "rw"}}}, check: func(t *testing.T, im imageMounts) {
			if len(im.Shares) != 1 || im.Shares[cfgDir] != "/data" || len(im.Layers) != 0 {
				t.Fatalf("shares %v layers %v", im.Shares, im.Layers)
			}
		}},
		{name: "writable file: given back", mounts: []Mount{{Destination: "/etc/app.conf", Type: "bind", Source: secret, Options: []string{"rbind", "rw"}}}, check: func(t *testing.T, im imageMounts) {
			want := []lepton.Layer{{Host: secret, Guest: "/etc/app.conf"}}
			if !slices.Equal(im.Files, want) || !slices.Equal(im.GiveBack, want) {
				t.Fatalf("files %v give back %v", im.Files, im.GiveBack)
			}
		}},
		{name: "writable device", mounts: []Mount{{Destination: "/etc/null", Type: "bind", Source: "/dev/null", Options: []string{"rbind", "rw"}}},
			err: "shares folders and copies files; this is neither"},
		{name: "missing source", mounts: []Mount{{Destination: "/data", Type: "bind", Source: filepath.Join(dir, "nope"), Options: []string{"ro"}}},
			err: "the source does not exist"},
		{name: "a volume", mounts: []Mount{{Destination: "/data", Type: "nfs", Source: "server:/x"}}, err: "(type nfs)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := planMounts(tt.mounts)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, im)
		})
	}
}

// TestConfigureTap: the guest takes the interface's address, mask and
// gateway as its static address.
func TestConfigureTap(t *testing.T) {
	var c lepton.Config
	Network{Mode: "tap", Interface: "eth0", Addrs: []string{"10.88.0.5/16"}, Gateway: "10.88.0.1"}.configure(&c)
	if rc := c.RunConfig; rc.IPAddress != "10.88.0.5" || rc.NetMask != "255.255.0.0" || rc.Gateway != "10.88.0.1" {
		t.Fatalf("configured %+v", rc)
	}
	var none lepton.Config
	Network{Mode: "none"}.configure(&none)
	if none.RunConfig.IPAddress != "" {
		t.Fatal("no network configured an address")
	}
}

func TestChooseNetwork(t *testing.T) {
	p := netip.MustParsePrefix
	lo := Iface{Name: "lo", Up: true, Loopback: true, Addrs: []netip.Prefix{p("127.0.0.1/8")}}
	tests := []struct {
		name   string
		ifaces []Iface
		want   Network
	}{
		{"podman --network none: loopback only", []Iface{lo}, Network{Mode: "none"}},
		{"a new namespace: loopback down", []Iface{{Name: "lo", Loopback: true}}, Network{Mode: "none"}},
		{"a veth with an address", []Iface{lo, {Name: "eth0", Up: true, Addrs: []netip.Prefix{p("10.88.0.5/16"), p("fe80::1/64")}}},
			Network{Mode: "tap", Interface: "eth0", Addrs: []string{"10.88.0.5/16"}}},
		{"a veth down", []Iface{lo, {Name: "eth0", Addrs: []netip.Prefix{p("10.88.0.5/16")}}}, Network{Mode: "none"}},
		{"link-local only (Docker before its hook)", []Iface{lo, {Name: "eth0", Up: true, Addrs: []netip.Prefix{p("fe80::1/64")}}}, Network{Mode: "none"}},
	}
	for _, tt := range tests {
		got := chooseNetwork(tt.ifaces)
		if got.Mode != tt.want.Mode || got.Interface != tt.want.Interface || strings.Join(got.Addrs, ",") != strings.Join(tt.want.Addrs, ",") {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
		if got.Mode != "none" {
			continue // a tap needs the namespace's interface (the e2e tests make one)
		}
		n, release, err := got.prepare(func(error) {})
		if err != nil {
			t.Fatalf("%s: prepare: %v", tt.name, err)
		}
		release()
		if n.Mode != "none" {
			t.Errorf("%s: prepared %+v", tt.name, n)
		}
	}
	if _, _, err := (Network{Mode: "warp"}).prepare(func(error) {}); err == nil {
		t.Error("an unknown mode prepared")
	}
}

func TestLimits(t *testing.T) {
	mem := func(n int64) *Resources {
		r := &Resources{}
		r.Memory = &struct {
			Limit *int64 `json:"limit,omitempty"`
		}{Limit: &n}
		return r
	}
	withCPU := func(r *Resources, quota int64, period uint64) *Resources {
		r.CPU = &struct {
			Quota  *int64  `json:"quota,omitempty"`
			Period *uint64 `json:"period,omitempty"`
		}{Quota: &quota, Period: &period}
		return r
	}
	for _, tc := range []struct {
		name          string
		linux         *Linux
		rel           string
		memMB, cpus   int
		limitBytes    int64
		quota, period int64
	}{
		{"no linux", nil, "", 0, 0, 0, 0, 0},
		{"cgroupfs path, 1 GiB, 2 cores", &Linux{CgroupsPath: "/libpod_parent/libpod-x", Resources: withCPU(mem(1<<30), 200000, 100000)},
			"libpod_parent/libpod-x", 768, 2, 1 << 30, 200000, 100000},
		{"systemd, small limit, half a core", &Linux{CgroupsPath: "system.slice:docker:x", Resources: withCPU(mem(200<<20), 50000, 100000)},
			"system.slice/docker-x.scope", minGuestMB, 1, 200 << 20, 50000, 100000},
	} {
		rel, l, memMB, cpus, err := limits(&Spec{Linux: tc.linux})
		if err != nil || rel != tc.rel || memMB != tc.memMB || cpus != tc.cpus || l.MemoryBytes != tc.limitBytes || l.CPUQuota != tc.quota || l.CPUPeriod != tc.period {
			t.Errorf("%s: %q %+v %d MiB %d CPUs %v", tc.name, rel, l, memMB, cpus, err)
		}
	}
	var c lepton.Config
	sizeVM(&c, 768, 2)
	if c.RunConfig.Memory != "768M" || c.RunConfig.CPUs != 2 {
		t.Fatalf("sized %+v", c.RunConfig)
	}
}

// TestGiveBackSent: what the Linux guest's init sends of a container's
// file is written over the host file it came from, in place; a file
// that is not the container's is an error; Nanos takes none this way.
func TestGiveBackSent(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(host, []byte("a longer start\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(host)
	rec := &record{Guest: "linux", GiveBack: []lepton.Layer{{Host: host, Guest: "/dev/termination-log"}}}
	take := giveBackSent(rec)
	if err := take("/dev/termination-log", []byte("bye\n")); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(host)
	if b, _ := os.ReadFile(host); string(b) != "bye\n" || !os.SameFile(before, after) {
		t.Fatalf("host file %q, same inode %v", b, os.SameFile(before, after))
	}
	if err := take("/etc/passwd", []byte("x")); err == nil {
		t.Fatal("a file not the container's was written")
	}
	if giveBackSent(&record{Guest: "nanos", GiveBack: rec.GiveBack}) != nil {
		t.Fatal("Nanos takes files on a channel")
	}
}

// TestGiveBackFile: the guest's file is written over the host's in place
// (the same inode, which a bind mount of it holds); a file missing on
// either side is an error, and no host file is made.
func TestGiveBackFile(t *testing.T) {
	dir := t.TempDir()
	tree := opsfs.NewTree()
	if err := tree.Add(opsfs.Entry{Path: "/dev/termination-log", Kind: opsfs.KindFile, Data: []byte("bye\n")}); err != nil {
		t.Fatal(err)
	}
	l, err := opsfs.LayoutTFS(tree, nil, opsfs.TFSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.Create(filepath.Join(dir, "fs"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	img.Truncate(int64(l.SizeSecs) * opsfs.SectorSize)
	if err := l.WriteAt(img, 0); err != nil {
		t.Fatal(err)
	}
	root, err := opsfs.OpenTFS(img, int64(l.SizeSecs)*opsfs.SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	host := filepath.Join(dir, "termination-log")
	os.WriteFile(host, []byte("a longer message from before\n"), 0o644)
	var before, after unix.Stat_t
	unix.Stat(host, &before)
	if err := giveBackFile(root, "/dev/termination-log", host); err != nil {
		t.Fatal(err)
	}
	unix.Stat(host, &after)
	if b, _ := os.ReadFile(host); string(b) != "bye\n" || before.Ino != after.Ino {
		t.Fatalf("host file %q, inode %d -> %d", b, before.Ino, after.Ino)
	}
	if err := giveBackFile(root, "/nope", host); err == nil {
		t.Fatal("a file missing in the guest was given back")
	}
	gone := filepath.Join(dir, "gone")
	if err := giveBackFile(root, "/dev/termination-log", gone); err == nil {
		t.Fatal("a host file that is gone was made")
	}
	if _, err := os.Stat(gone); err == nil {
		t.Fatal("a host file that is gone was made")
	}
}
