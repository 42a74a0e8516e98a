package ociruntime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsdev/ops/internal/proc"
)

func TestCheckID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"abc", true},
		{"2492d5187c9fcc5c7d069cccdda5a1994c82dea4303e3637bf3c0f98f3e018d9", true},
		{"a.b-c_d+e", true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"../x", false},
		{strings.Repeat("a", 1025), false},
	}
	for _, tt := range tests {
		if err := CheckID(tt.id); (err == nil) != tt.ok {
			t.Errorf("CheckID(%q) = %v, want ok %v", tt.id, err, tt.ok)
		}
	}
}

func TestStore(t *testing.T) {
	s := Store{Root: filepath.Join(t.TempDir(), "root")}
	if _, err := s.load("c1"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("load of unknown: %v", err)
	}
	unlock, err := s.make("c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.make("c1"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second make: %v", err)
	}
	r, err := s.load("c1")
	if err != nil || r.Status != Creating {
		t.Fatalf("a folder without state is creating: %+v %v", r, err)
	}
	created := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	code := 3
	r = &record{ID: "c1", Bundle: "/b", Rootfs: "/b/rootfs", Created: created, Status: Stopped, ExitCode: &code,
		Annotations: map[string]string{"k": "v"}, Network: Network{Mode: "user", Interface: "eth0"}}
	if err := s.save(r); err != nil {
		t.Fatal(err)
	}
	unlock()
	got, err := s.load("c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Bundle != "/b" || !got.Created.Equal(created) || *got.ExitCode != 3 || got.Annotations["k"] != "v" || got.Network.Interface != "eth0" {
		t.Fatalf("round trip: %+v", got)
	}
	if err := s.update("c1", func(r *record) { r.Error = "x" }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.load("c1"); got.Error != "x" {
		t.Fatalf("update lost: %+v", got)
	}
	ids, err := s.List()
	if err != nil || len(ids) != 1 || ids[0] != "c1" {
		t.Fatalf("List: %v %v", ids, err)
	}
	if err := s.remove("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.lock("c1"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("lock after remove: %v", err)
	}
	if ids, _ := s.List(); len(ids) != 0 {
		t.Fatalf("List after remove: %v", ids)
	}
}

// TestStatus checks that a container whose supervisor has gone is
// stopped, whatever its record says, and has no pid.
func TestStatus(t *testing.T) {
	self := os.Getpid()
	start, err := proc.Start(self)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	dead := c.Process.Pid
	tests := []struct {
		name   string
		r      record
		status string
		pid    int
	}{
		{"created, alive", record{Status: Created, Supervisor: self, SupervisorStart: start}, Created, self},
		{"running, alive", record{Status: Running, Supervisor: self, SupervisorStart: start}, Running, self},
		{"running, gone", record{Status: Running, Supervisor: dead, SupervisorStart: start}, Stopped, 0},
		{"running, pid reused", record{Status: Running, Supervisor: self, SupervisorStart: start + 1}, Stopped, 0},
		{"created, gone", record{Status: Created, Supervisor: dead, SupervisorStart: 1}, Stopped, 0},
		{"creating, no supervisor yet", record{Status: Creating}, Creating, 0},
		{"creating, supervisor gone", record{Status: Creating, Supervisor: dead, SupervisorStart: 1}, Stopped, 0},
		{"stopped", record{Status: Stopped, Supervisor: self, SupervisorStart: start}, Stopped, 0},
	}
	for _, tt := range tests {
		st := tt.r.state()
		if st.Status != tt.status || st.Pid != tt.pid || st.OCIVersion != SpecVersion {
			t.Errorf("%s: status %s pid %d, want %s %d", tt.name, st.Status, st.Pid, tt.status, tt.pid)
		}
	}
}

func TestQMPSocket(t *testing.T) {
	short := Store{Root: "/run/ops-runtime"}
	id := strings.Repeat("a", 64)
	if p := short.qmpSocket(id); p != "/run/ops-runtime/"+id+"/qmp" {
		t.Errorf("short root: %s", p)
	}
	long := Store{Root: "/tmp/" + strings.Repeat("x", 60)}
	p := long.qmpSocket(id)
	if len(p) >= 100 || !strings.HasPrefix(p, os.TempDir()) || p != long.qmpSocket(id) {
		t.Errorf("long root: %s", p)
	}
	if p == long.qmpSocket("other") {
		t.Errorf("two containers share %s", p)
	}
}
