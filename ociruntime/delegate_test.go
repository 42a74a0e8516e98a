package ociruntime

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsPodSandbox(t *testing.T) {
	for _, tt := range []struct {
		ann  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{AnnotationCRIContainerType: "sandbox"}, true},
		{map[string]string{AnnotationCRIContainerType: "container"}, false},
		{map[string]string{AnnotationCRIOContainerType: "sandbox"}, true},
		{map[string]string{"io.kubernetes.cri.sandbox-id": "abc"}, false},
	} {
		s := &Spec{Annotations: tt.ann}
		if got := s.IsPodSandbox(); got != tt.want {
			t.Errorf("%v: IsPodSandbox %v, want %v", tt.ann, got, tt.want)
		}
	}
}

// TestDelegation checks the hand-off record: written, read, removed
// (with its folder once empty), beside the containers without being one.
func TestDelegation(t *testing.T) {
	s := Store{Root: filepath.Join(t.TempDir(), "root")}
	if _, ok, err := s.Delegated("pod1"); ok || err != nil {
		t.Fatalf("before: %v %v", ok, err)
	}
	if err := s.Delegate("pod1", "runc"); err == nil {
		t.Fatal("a relative runtime path was taken")
	}
	if err := s.Delegate("../x", "/usr/sbin/runc"); err == nil {
		t.Fatal("a bad ID was taken")
	}
	if err := s.Delegate("pod1", "/usr/sbin/runc"); err != nil {
		t.Fatal(err)
	}
	rt, ok, err := s.Delegated("pod1")
	if err != nil || !ok || rt != "/usr/sbin/runc" {
		t.Fatalf("Delegated: %q %v %v", rt, ok, err)
	}
	if _, ok, _ := s.Delegated("pod2"); ok {
		t.Fatal("another ID is delegated too")
	}
	if _, ok, err := s.Delegated("-f"); ok || err != nil {
		t.Fatalf("a flag as an ID: %v %v", ok, err)
	}
	// runc's own state for the ID lives in the same root, in the
	// container's folder; the record does not meet it and is no
	// container of ops's.
	os.MkdirAll(filepath.Join(s.Root, "pod1"), 0o711)
	if ids, err := s.List(); err != nil || len(ids) != 1 || ids[0] != "pod1" {
		t.Fatalf("List: %v %v", ids, err)
	}
	if err := s.Undelegate("pod1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Undelegate("pod1"); err != nil {
		t.Fatalf("a second Undelegate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, delegatedDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the records' folder is left: %v", err)
	}
	os.MkdirAll(filepath.Join(s.Root, delegatedDir), 0o711)
	os.WriteFile(s.delegationFile("bad"), []byte("{"), 0o600)
	if _, _, err := s.Delegated("bad"); err == nil || !strings.Contains(err.Error(), "not a hand-off record") {
		t.Fatalf("a broken record: %v", err)
	}
}

func TestFindRunc(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "bin", "ops-runtime")
	os.MkdirAll(filepath.Dir(link), 0o755)
	self := filepath.Join(dir, "ops")
	os.WriteFile(self, []byte("ops"), 0o755)
	onPath := filepath.Join(dir, "sbin", "runc")
	os.MkdirAll(filepath.Dir(onPath), 0o755)
	os.WriteFile(onPath, []byte("runc"), 0o755)
	look := func(p string) func(string) (string, error) {
		return func(string) (string, error) {
			if p == "" {
				return "", exec.ErrNotFound
			}
			return p, nil
		}
	}
	if got, err := FindRunc(link, self, look(onPath)); err != nil || got != onPath {
		t.Fatalf("on PATH: %q %v", got, err)
	}
	if _, err := FindRunc(link, self, look("")); err == nil || !strings.Contains(err.Error(), "install Debian's runc") {
		t.Fatalf("none: %v", err)
	}
	// ops itself named runc on PATH is not runc.
	if _, err := FindRunc(link, self, look(self)); err == nil {
		t.Fatal("ops itself was taken for runc")
	}
	beside := filepath.Join(dir, "bin", "runc")
	os.WriteFile(beside, []byte("runc"), 0o644)
	if got, _ := FindRunc(link, self, look(onPath)); got != onPath {
		t.Fatalf("a runc beside the link that is not executable was taken: %q", got)
	}
	os.Chmod(beside, 0o755)
	if got, err := FindRunc(link, self, look(onPath)); err != nil || got != beside {
		t.Fatalf("beside the link: %q %v", got, err)
	}
}

func TestRunDelegated(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "runc")
	out := filepath.Join(dir, "out")
	os.WriteFile(prog, []byte("#!/bin/sh\necho \"$0 $*\" > "+out+"\n[ \"$1\" = kill ] && kill -TERM $$\nexit 7\n"), 0o755)
	code, err := RunDelegated(prog, []string{"--root", "/r", "delete", "--force", "id1"}, [3]*os.File{}, nil)
	if err != nil || code != 7 {
		t.Fatalf("exit %d, %v", code, err)
	}
	if b, _ := os.ReadFile(out); strings.TrimSpace(string(b)) != prog+" --root /r delete --force id1" {
		t.Fatalf("ran %q", b)
	}
	if code, err := RunDelegated(prog, []string{"kill"}, [3]*os.File{}, nil); err != nil || code != 128+15 {
		t.Fatalf("a signal: exit %d, %v", code, err)
	}
	if _, err := RunDelegated(filepath.Join(dir, "none"), nil, [3]*os.File{}, nil); err == nil {
		t.Fatal("a missing runtime ran")
	}
}
