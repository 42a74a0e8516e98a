package ociruntime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/internal/fileutil"
)

// A Kubernetes pod's sandbox container (the pause container, which only
// holds the pod's namespaces while the pod lives) is not a unikernel:
// ops hands it, and every later command for its ID, to runc, so the
// pod's network namespace exists as the CRI plugin and its CNI plugins
// expect, and the pod's application containers (unikernels) join it.
// The hand-off is recorded in the state folder, under delegatedDir, one
// file per container ID naming the runtime that took it.

// delegatedDir is the folder of hand-off records in the runtime's root.
// Its name is not a container ID ('@' is not allowed in one), so it
// cannot meet a container's folder, and runc's own state, which lives in
// the same root under the container's ID, does not meet it either.
const delegatedDir = "@runc"

// The annotations that mark a pod's sandbox container: containerd's CRI
// plugin's and CRI-O's.
const (
	AnnotationCRIContainerType  = "io.kubernetes.cri.container-type"
	AnnotationCRIOContainerType = "io.kubernetes.cri-o.ContainerType"
)

// IsPodSandbox reports whether the spec is a Kubernetes pod's sandbox
// container, which ops hands to runc.
func (s *Spec) IsPodSandbox() bool {
	return s.Annotations[AnnotationCRIContainerType] == "sandbox" || s.Annotations[AnnotationCRIOContainerType] == "sandbox"
}

// Delegation is the record of a container handed to another runtime.
type Delegation struct {
	Runtime string `json:"runtime"` // the runtime's program, absolute
}

func (s Store) delegationFile(id string) string { return filepath.Join(s.Root, delegatedDir, id) }

// Delegate records that id's every command goes to runtime (written
// atomically, before the runtime's create runs).
func (s Store) Delegate(id, runtime string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if !filepath.IsAbs(runtime) {
		return fmt.Errorf("runtime %q is not an absolute path", runtime)
	}
	if err := os.MkdirAll(filepath.Join(s.Root, delegatedDir), 0o711); err != nil {
		return goerrors.Wrap(err, 0)
	}
	b, err := json.Marshal(Delegation{Runtime: runtime})
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	if err := fileutil.WriteAtomic(s.delegationFile(id), append(b, '\n'), 0o600); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}

// Delegated is the runtime id was handed to, if it was.
func (s Store) Delegated(id string) (runtime string, ok bool, err error) {
	if CheckID(id) != nil {
		return "", false, nil
	}
	b, err := os.ReadFile(s.delegationFile(id))
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, goerrors.Wrap(err, 0)
	}
	var d Delegation
	if err := json.Unmarshal(b, &d); err != nil || !filepath.IsAbs(d.Runtime) {
		return "", false, fmt.Errorf("%s: not a hand-off record (%v)", s.delegationFile(id), err)
	}
	return d.Runtime, true, nil
}

// Undelegate removes id's hand-off record; none is no error.
func (s Store) Undelegate(id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if err := os.Remove(s.delegationFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return goerrors.Wrap(err, 0)
	}
	os.Remove(filepath.Join(s.Root, delegatedDir)) // the last one: the folder goes too
	return nil
}

// RuncName is the program a pod's sandbox is handed to.
const RuncName = "runc"

// FindRunc is the runc that takes pod sandboxes: the one beside the
// ops-runtime link, else the one on PATH (lookPath), never ops itself
// (self: this program's file). An error says where it looked.
func FindRunc(link, self string, lookPath func(string) (string, error)) (string, error) {
	isSelf := func(p string) bool { return self != "" && sameFile(p, self) }
	beside := filepath.Join(filepath.Dir(link), RuncName)
	if st, err := os.Stat(beside); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 && !isSelf(beside) {
		return beside, nil
	}
	p, err := lookPath(RuncName)
	if err == nil && !isSelf(p) {
		if abs, aerr := filepath.Abs(p); aerr == nil {
			return abs, nil
		}
		return p, nil
	}
	return "", fmt.Errorf("a pod's sandbox container is handed to runc, and there is none beside %s or on PATH (install Debian's runc)", link)
}

// RunDelegated runs runtime with args (the engine's command line,
// verbatim) as a child with the given standard streams and environment,
// and returns its exit code; an error is a runtime that could not be
// run at all.
func RunDelegated(runtime string, args []string, stdio [3]*os.File, env []string) (int, error) {
	c := &exec.Cmd{Path: runtime, Args: append([]string{RuncName}, args...), Env: env,
		Stdin: stdio[0], Stdout: stdio[1], Stderr: stdio[2]}
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, goerrors.Errorf("running %s: %w", runtime, err)
	}
	return 0, nil
}
