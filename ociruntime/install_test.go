package ociruntime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	link, err := Install(dir, "/opt/ops/old", Config{Home: "/srv/ops"})
	if err != nil {
		t.Fatal(err)
	}
	link, err = Install(dir, "/opt/ops/ops", Config{Home: "/srv/ops", Guest: "linux", Root: "/run/x"})
	if err != nil {
		t.Fatal(err)
	}
	if to, err := os.Readlink(link); err != nil || to != "/opt/ops/ops" || link != filepath.Join(dir, "ops-runtime") {
		t.Fatalf("link %s -> %s (%v)", link, to, err)
	}
	c, err := LoadConfig(ConfigPath(link))
	if err != nil || c != (Config{Home: "/srv/ops", Guest: "linux", Root: "/run/x"}) {
		t.Fatalf("configuration %+v %v", c, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("left in %s: %v", dir, ents)
	}
	if _, err := Install(dir, "/opt/ops/ops", Config{Home: "rel"}); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("relative home: %v", err)
	}
	os.Remove(link)
	os.WriteFile(link, []byte("runc"), 0o755)
	if _, err := Install(dir, "/opt/ops/ops", Config{Home: "/srv/ops"}); err == nil || !strings.Contains(err.Error(), "is not a link") {
		t.Fatalf("over a file: %v", err)
	}
	text := EngineConfig("/usr/local/bin/ops-runtime")
	for _, want := range []string{`--runtime /usr/local/bin/ops-runtime`, `ops = ["/usr/local/bin/ops-runtime"]`, `"path": "/usr/local/bin/ops-runtime"`,
		`io.containerd.grpc.v1.cri`, `io.containerd.cri.v1.runtime`, `BinaryName = "/usr/local/bin/ops-runtime"`, "kind: RuntimeClass"} {
		if !strings.Contains(text, want) {
			t.Errorf("engine configuration lacks %q", want)
		}
	}
}
