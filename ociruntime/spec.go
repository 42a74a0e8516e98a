// Package ociruntime is ops as an OCI runtime: the runc commands that
// container engines call (create, start, state, kill, delete, ps), run
// over a bundle whose root filesystem and process become a unikernel
// image at create and boot at start. A container's life is one folder
// per ID under the runtime's root (state.json, written atomically under
// the folder's lock) and one long-lived supervisor process, the
// container's "pid", that boots the image through lepton.Machine once
// start says so and exits with the program's exit code.
package ociruntime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	goerrors "github.com/go-errors/errors"
)

// SpecVersion is the runtime-spec version ops answers with.
const SpecVersion = "1.0.2"

// Spec is the subset of the runtime-spec's config.json that ops reads.
// What a unikernel cannot honour (user, rlimits, capabilities, seccomp,
// AppArmor) is read so that it can be noted, and otherwise ignored.
type Spec struct {
	OCIVersion  string            `json:"ociVersion"`
	Process     *Process          `json:"process"`
	Root        *Root             `json:"root"`
	Hostname    string            `json:"hostname,omitempty"`
	Mounts      []Mount           `json:"mounts,omitempty"`
	Hooks       *Hooks            `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *Linux            `json:"linux,omitempty"`
}

// Process is the program the container runs.
type Process struct {
	Terminal        bool            `json:"terminal,omitempty"`
	User            User            `json:"user"`
	Args            []string        `json:"args"`
	Env             []string        `json:"env,omitempty"`
	Cwd             string          `json:"cwd"`
	Rlimits         []Rlimit        `json:"rlimits,omitempty"`
	Capabilities    json.RawMessage `json:"capabilities,omitempty"`
	ApparmorProfile string          `json:"apparmorProfile,omitempty"`
	NoNewPrivileges bool            `json:"noNewPrivileges,omitempty"`
}

// User is who the process runs as; a unikernel has one user.
type User struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// Rlimit is one resource limit (ignored: the guest has its own).
type Rlimit struct {
	Type string `json:"type"`
	Hard uint64 `json:"hard"`
	Soft uint64 `json:"soft"`
}

// Root is the container's root filesystem, relative to the bundle when
// not absolute.
type Root struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly,omitempty"`
}

// Mount is one mount of the container.
type Mount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type,omitempty"`
	Source      string   `json:"source,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// Hooks are the programs the runtime runs at points of the lifecycle.
type Hooks struct {
	Prestart        []Hook `json:"prestart,omitempty"`
	CreateRuntime   []Hook `json:"createRuntime,omitempty"`
	CreateContainer []Hook `json:"createContainer,omitempty"`
	StartContainer  []Hook `json:"startContainer,omitempty"`
	Poststart       []Hook `json:"poststart,omitempty"`
	Poststop        []Hook `json:"poststop,omitempty"`
}

// Hook is one hook: a program, its argv (argv[0] included) and
// environment, and a timeout in seconds (nil: none).
type Hook struct {
	Path    string   `json:"path"`
	Args    []string `json:"args,omitempty"`
	Env     []string `json:"env,omitempty"`
	Timeout *int     `json:"timeout,omitempty"`
}

// Linux is the Linux-specific part ops reads.
type Linux struct {
	Namespaces  []Namespace     `json:"namespaces,omitempty"`
	CgroupsPath string          `json:"cgroupsPath,omitempty"`
	Resources   *Resources      `json:"resources,omitempty"`
	Seccomp     json.RawMessage `json:"seccomp,omitempty"`
}

// Resources are the container's memory and CPU caps ops reads.
type Resources struct {
	Memory *struct {
		Limit *int64 `json:"limit,omitempty"`
	} `json:"memory,omitempty"`
	CPU *struct {
		Quota  *int64  `json:"quota,omitempty"`
		Period *uint64 `json:"period,omitempty"`
	} `json:"cpu,omitempty"`
}

// Namespace is a namespace the container gets: a new one, or, with a
// path, an existing one it joins.
type Namespace struct {
	Type string `json:"type"`
	Path string `json:"path,omitempty"`
}

// ParseSpec reads config.json's bytes and checks what ops needs: a
// process with arguments, a root path, and hooks with absolute paths.
func ParseSpec(b []byte) (*Spec, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	var s Spec
	if err := d.Decode(&s); err != nil {
		return nil, fmt.Errorf("config.json: %w", jsonError(err))
	}
	if d.More() {
		return nil, errors.New("config.json: more than one JSON value")
	}
	if s.OCIVersion == "" {
		return nil, errors.New("config.json: no ociVersion")
	}
	if s.Process == nil {
		return nil, errors.New("config.json: no process (a unikernel runs one program)")
	}
	if len(s.Process.Args) == 0 || s.Process.Args[0] == "" {
		return nil, errors.New("config.json: process.args is empty")
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, errors.New("config.json: no root.path")
	}
	for i, m := range s.Mounts {
		if !strings.HasPrefix(m.Destination, "/") {
			return nil, fmt.Errorf("config.json: mounts[%d].destination %q is not an absolute path", i, m.Destination)
		}
	}
	if s.Hooks != nil {
		for _, h := range s.Hooks.all() {
			if !filepath.IsAbs(h.hook.Path) {
				return nil, fmt.Errorf("config.json: hooks.%s path %q is not absolute", h.kind, h.hook.Path)
			}
			if h.hook.Timeout != nil && *h.hook.Timeout <= 0 {
				return nil, fmt.Errorf("config.json: hooks.%s %s: timeout %d is not positive", h.kind, h.hook.Path, *h.hook.Timeout)
			}
		}
	}
	for _, n := range s.namespaces() {
		if n.Path != "" && !filepath.IsAbs(n.Path) {
			return nil, fmt.Errorf("config.json: %s namespace path %q is not absolute", n.Type, n.Path)
		}
	}
	return &s, nil
}

// jsonError says where a syntax error is, in the few words a user needs.
func jsonError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%v (at byte %d)", se, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%s: a %s where %s belongs", te.Field, te.Value, te.Type)
	}
	return err
}

// ReadSpec reads bundle/config.json.
func ReadSpec(bundle string) (*Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("bundle %s has no config.json", bundle)
	}
	if err != nil {
		return nil, goerrors.Wrap(err, 0)
	}
	s, err := ParseSpec(b)
	if err != nil {
		return nil, fmt.Errorf("%s/%w", bundle, err)
	}
	return s, nil
}

// RootPath is the root filesystem's host path: root.path, relative to
// the bundle unless absolute.
func (s *Spec) RootPath(bundle string) string {
	if filepath.IsAbs(s.Root.Path) {
		return filepath.Clean(s.Root.Path)
	}
	return filepath.Join(bundle, s.Root.Path)
}

func (s *Spec) namespaces() []Namespace {
	if s.Linux == nil {
		return nil
	}
	return s.Linux.Namespaces
}

// NetworkNamespace says which network namespace the container has: its
// path when it joins one, else new (a namespace of its own, made by the
// runtime), else neither (it shares the runtime's).
func (s *Spec) NetworkNamespace() (path string, isNew bool) {
	for _, n := range s.namespaces() {
		if n.Type == "network" {
			return n.Path, n.Path == ""
		}
	}
	return "", false
}

type namedHook struct {
	kind string
	hook Hook
}

func (h *Hooks) all() []namedHook {
	var out []namedHook
	add := func(kind string, hs []Hook) {
		for _, x := range hs {
			out = append(out, namedHook{kind, x})
		}
	}
	add("prestart", h.Prestart)
	add("createRuntime", h.CreateRuntime)
	add("createContainer", h.CreateContainer)
	add("startContainer", h.StartContainer)
	add("poststart", h.Poststart)
	add("poststop", h.Poststop)
	return out
}

// Ignored lists what the spec asks for that a unikernel does not do, for
// one note in the log.
func (s *Spec) Ignored() []string {
	var out []string
	p := s.Process
	if p.User.UID != 0 || p.User.GID != 0 {
		out = append(out, fmt.Sprintf("user %d:%d (the guest has one user)", p.User.UID, p.User.GID))
	}
	if len(p.Rlimits) > 0 {
		out = append(out, "rlimits")
	}
	if len(p.Capabilities) > 0 && string(p.Capabilities) != "null" {
		out = append(out, "capabilities")
	}
	if p.ApparmorProfile != "" {
		out = append(out, "apparmorProfile")
	}
	if s.Linux != nil && len(s.Linux.Seccomp) > 0 && string(s.Linux.Seccomp) != "null" {
		out = append(out, "seccomp")
	}
	if s.Hooks != nil && len(s.Hooks.CreateContainer) > 0 {
		out = append(out, "createContainer hooks (they run in a container's mount namespace, which a unikernel has none of)")
	}
	if s.Hooks != nil && len(s.Hooks.StartContainer) > 0 {
		out = append(out, "startContainer hooks (they run inside the container, which is a VM)")
	}
	return out
}
