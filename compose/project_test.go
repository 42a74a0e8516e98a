package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/qemu"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogs: each line prefixed with the instance's name, padded as docker
// compose pads them; with follow, lines appended later appear too.
func TestLogs(t *testing.T) {
	store := instance.Store{Dir: t.TempDir()}
	for name, text := range map[string]string{"p-web": "one\ntwo\n", "p-db-1": "ready\npartial"} {
		os.MkdirAll(filepath.Join(store.Dir, name), 0o755)
		os.WriteFile(store.LogFile(name), []byte(text), 0o644)
	}
	var out bytes.Buffer
	if err := Logs(context.Background(), store, []string{"p-db-1", "p-web"}, &out, false); err != nil {
		t.Fatal(err)
	}
	want := "p-db-1 | ready\np-db-1 | partial\np-web  | one\np-web  | two\n"
	if out.String() != want {
		t.Fatalf("logs:\n%s\nwant:\n%s", out.String(), want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var buf syncBuffer
	done := make(chan error)
	go func() { done <- Logs(ctx, store, []string{"p-web"}, &buf, true) }()
	f, _ := os.OpenFile(store.LogFile("p-web"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("three\n")
	f.Close()
	for i := 0; i < 100 && !strings.Contains(buf.String(), "p-web | three\n"); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if buf.String() != "p-web | one\np-web | two\np-web | three\n" {
		t.Fatalf("follow:\n%s", buf.String())
	}
}

// TestPSShared: a port a service's replicas share is on its first row
// alone, beside each replica's own ports.
func TestPSShared(t *testing.T) {
	home := t.TempDir()
	store := instance.Store{Dir: filepath.Join(home, "instances")}
	for _, name := range []string{"p-web-1", "p-web-2"} {
		writeInstance(t, store, name, "")
		b, _ := json.Marshal(instance.Spec{Name: name, Project: "p", Service: "web", Net: &qemu.Net{Namespace: "net.sock"}})
		os.WriteFile(filepath.Join(store.Dir, name, "spec.json"), b, 0o644)
	}
	p := &Project{File: &File{Name: "p", Services: map[string]*Service{"web": {}}}, Dir: filepath.Join(home, "compose", "p")}
	spec := NetSpec{Host: []HostPort{
		{Service: "web", Listen: "127.0.0.1:18080", Port: 8080},
		{Service: "web", Instance: "p-web-1", Listen: "127.0.0.1:40001", Port: 8080, Target: "10.0.3.1:8080"},
		{Service: "web", Instance: "p-web-2", Listen: "127.0.0.1:40002", Port: 8080, Target: "10.0.3.2:8080"},
	}}
	b, _ := json.Marshal(spec)
	os.MkdirAll(p.Dir, 0o755)
	os.WriteFile(netSpecFile(p.Dir), b, 0o644)
	rows, err := p.PS(store)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.Name+": "+r.Ports)
	}
	want := []string{"p-web-1: 127.0.0.1:18080->8080 (balanced), 127.0.0.1:40001->8080", "p-web-2: 127.0.0.1:40002->8080"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
