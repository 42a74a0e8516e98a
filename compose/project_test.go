package compose

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsdev/ops/instance"
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
