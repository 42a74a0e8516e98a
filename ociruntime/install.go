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
	return r.Replace(`Podman (tested: Debian 12's podman 4.3):
  podman run --runtime LINK --rm IMAGE
  or, in /etc/containers/containers.conf:
    [engine.runtimes]
    ops = ["LINK"]
  then: podman run --runtime ops --rm IMAGE

Docker (tested: Debian 12's docker.io 20.10; /etc/docker/daemon.json, then restart dockerd):
  {"runtimes": {"ops": {"path": "LINK"}}}
  then: docker run --runtime ops --rm IMAGE

containerd 1.6 (tested with ctr and, through the CRI plugin, crictl; /etc/containerd/config.toml, version = 2):
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ops]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ops.options]
    BinaryName = "LINK"
  and for ctr: ctr run --runc-binary LINK IMAGE ID
  A pod's sandbox (pause) container is handed to runc: install runc (beside LINK or on PATH).

containerd 2.x (version = 3; not tested):
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.ops]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.ops.options]
    BinaryName = "LINK"

Kubernetes, with containerd configured as above (the CRI path tested with crictl, not with a kubelet):
  apiVersion: node.k8s.io/v1
  kind: RuntimeClass
  metadata:
    name: ops
  handler: ops
  then runtimeClassName: ops in a pod's spec
`)
}
