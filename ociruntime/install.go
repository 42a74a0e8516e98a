package ociruntime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/internal/fileutil"
)

// LinkName is the name ops serves as an OCI runtime by.
const LinkName = "ops-runtime"

// Install makes dir/ops-runtime a link to the ops program self (replacing
// an earlier link, never a file) and writes c as the configuration file
// beside it; it returns the link's path.
func Install(dir, self string, c Config) (string, error) {
	if !filepath.IsAbs(c.Home) {
		return "", fmt.Errorf("--home %q: name the ops home by an absolute path", c.Home)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	link := filepath.Join(dir, LinkName)
	if st, err := os.Lstat(link); err == nil && st.Mode()&os.ModeSymlink == 0 {
		return "", fmt.Errorf("%s exists and is not a link: remove it first", link)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", goerrors.Wrap(err, 0)
	}
	tmp, err := fileutil.CreateTemp(dir, LinkName)
	if err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	tmp.Close()
	os.Remove(tmp.Name())
	if err := os.Symlink(self, tmp.Name()); err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	if err := os.Rename(tmp.Name(), link); err != nil {
		os.Remove(tmp.Name())
		return "", goerrors.Wrap(err, 0)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	if err := fileutil.WriteAtomic(ConfigPath(link), append(b, '\n'), 0o644); err != nil {
		return "", goerrors.Wrap(err, 0)
	}
	return link, nil
}

// EngineConfig is how each engine is told to use the runtime at link.
func EngineConfig(link string) string {
	r := strings.NewReplacer("LINK", link)
	return r.Replace(`Podman (tested; Debian 12's podman 4.3):
  podman run --runtime LINK --rm IMAGE
  or, in /etc/containers/containers.conf:
    [engine.runtimes]
    ops = ["LINK"]
  then: podman run --runtime ops --rm IMAGE

Docker (/etc/docker/daemon.json, then restart dockerd; not tested yet):
  {"runtimes": {"ops": {"path": "LINK"}}}
  then: docker run --runtime ops --rm IMAGE

containerd 1.6 (/etc/containerd/config.toml, version = 2; not tested yet):
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ops]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ops.options]
    BinaryName = "LINK"

containerd 2.x (version = 3; not tested yet):
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.ops]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.ops.options]
    BinaryName = "LINK"
  and for ctr: ctr run --runc-binary LINK IMAGE ID

Kubernetes, with containerd configured as above (not tested yet):
  apiVersion: node.k8s.io/v1
  kind: RuntimeClass
  metadata:
    name: ops
  handler: ops
`)
}
