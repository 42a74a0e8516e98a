package instance

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsdev/ops/internal/proc"
	"github.com/opsdev/ops/lepton"
)

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Policy
		err  string
	}{
		{"", Policy{Mode: "no"}, ""},
		{"no", Policy{Mode: "no"}, ""},
		{"always", Policy{Mode: "always"}, ""},
		{"unless-stopped", Policy{Mode: "always"}, ""},
		{"on-failure", Policy{Mode: "on-failure"}, ""},
		{"on-failure:3", Policy{Mode: "on-failure", Max: 3}, ""},
		{"on-failure:0", Policy{}, "whole number from 1"},
		{"on-failure:x", Policy{}, "whole number from 1"},
		{"always:2", Policy{}, "use no, on-failure"},
		{"sometimes", Policy{}, "use no, on-failure"},
	} {
		got, err := ParsePolicy(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
		if back, _ := ParsePolicy(got.String()); back != got {
			t.Errorf("%q: String %q does not parse back", tc.in, got.String())
		}
	}
}

func TestPolicyAgain(t *testing.T) {
	for _, tc := range []struct {
		p        Policy
		failed   bool
		restarts int
		want     bool
	}{
		{Policy{Mode: "no"}, true, 0, false},
		{Policy{Mode: "always"}, false, 100, true},
		{Policy{Mode: "on-failure"}, false, 0, false},
		{Policy{Mode: "on-failure"}, true, 100, true},
		{Policy{Mode: "on-failure", Max: 2}, true, 1, true},
		{Policy{Mode: "on-failure", Max: 2}, true, 2, false},
	} {
		if got := tc.p.again(tc.failed, tc.restarts); got != tc.want {
			t.Errorf("%+v failed=%v restarts=%d: %v, want %v", tc.p, tc.failed, tc.restarts, got, tc.want)
		}
	}
	for n, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 4: 16 * time.Second, 5: 30 * time.Second, 40: 30 * time.Second} {
		if got := backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestStore(t *testing.T) {
	s := NewStore(lepton.Home{Dir: t.TempDir()})
	spec := Spec{Name: "web", Image: "/images/web", Restart: Policy{Mode: "always"}}
	if err := s.Create(spec); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(spec); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("duplicate: %v", err)
	}
	if err := s.Create(Spec{Name: "Bad Name"}); err == nil {
		t.Fatal("bad name accepted")
	}
	in, err := s.Get("web")
	if err != nil || in.Status != Stopped || in.Restart.Mode != "always" {
		t.Fatalf("%+v %v", in, err)
	}
	// A state that says running, from a supervisor that is gone: dead.
	if err := s.setState("web", State{Status: Running, Supervisor: os.Getpid(), Started: 1}); err != nil {
		t.Fatal(err)
	}
	if in, _ = s.Get("web"); in.Status != Dead || in.Active() {
		t.Fatalf("status %s", in.Status)
	}
	start, _ := proc.Start(os.Getpid())
	s.setState("web", State{Status: Running, Supervisor: os.Getpid(), Started: start})
	if in, _ = s.Get("web"); in.Status != Running || s.Delete("web") == nil {
		t.Fatalf("status %s; deleting a running instance must fail", in.Status)
	}
	s.setState("web", State{Status: Exited})
	if list, err := s.List(); err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
	if err := s.Delete("web"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("web"); err == nil || !strings.Contains(err.Error(), `no instance "web"`) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestCreateRace(t *testing.T) {
	s := NewStore(lepton.Home{Dir: t.TempDir()})
	errs := make([]error, 6)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Create(Spec{Name: "x", Image: strconv.Itoa(i)}) }()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if !strings.Contains(err.Error(), "exists already") {
			t.Errorf("loser: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d winners", won)
	}
	in, err := s.Get("x")
	if err != nil || in.Status != Stopped {
		t.Fatalf("%+v %v", in, err)
	}
	if ents, _ := os.ReadDir(s.Dir); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}
