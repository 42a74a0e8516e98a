package linuxkernel

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsdev/ops/internal/testutil"
)

func TestModuleOrder(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "modules.dep"), strings.Join([]string{
		"kernel/drivers/virtio/virtio_ring.ko:",
		"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/net/core/failover.ko:",
		"kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko",
		"kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
	}, "\n")+"\n")
	testutil.WriteFile(t, filepath.Join(dir, "modules.builtin"), "kernel/drivers/char/virtio-console.ko\n")
	got, err := ModuleOrder(dir, []string{"virtio_mmio", "virtio_net", "virtio_console"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, modName(p))
	}
	if s := strings.Join(names, " "); s != "virtio_ring virtio virtio_mmio failover net_failover virtio_net" {
		t.Fatalf("load order %s", s)
	}
	if _, err := ModuleOrder(dir, []string{"nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown module: %v", err)
	}
}

func TestLZ4Block(t *testing.T) {
	// Literals "abc", then a match of offset 3, length 6: "abcabcabc".
	block := []byte{0x32, 'a', 'b', 'c', 0x03, 0x00, 0x10, 'z'}
	out, err := lz4Block(nil, block)
	if err != nil || string(out) != "abcabcabcz" {
		t.Fatalf("%q %v", out, err)
	}
	for _, bad := range [][]byte{{0xf0}, {0x10, 'a', 0x05, 0x00}, {0x50, 'a'}} {
		if _, err := lz4Block(nil, bad); err == nil {
			t.Errorf("%x decoded without error", bad)
		}
	}
}

func TestExtractHostVmlinux(t *testing.T) {
	m, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(m) == 0 {
		t.Skip("SKIP: no /boot/vmlinuz-* on this machine ('make deps' installs one)")
	}
	b, err := os.ReadFile(m[len(m)-1])
	if err != nil {
		t.Skipf("SKIP: %v", err)
	}
	out, err := extractVmlinux(b)
	if err != nil {
		t.Skipf("SKIP: %s: %v", m[len(m)-1], err)
	}
	if !bytes.HasPrefix(out, []byte("\x7fELF")) || len(out) < len(b) {
		t.Fatalf("extracted %d bytes, not an ELF larger than the %d-byte bzImage", len(out), len(b))
	}
}
