package proc

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestAlive(t *testing.T) {
	start, err := Start(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(os.Getpid(), start) || Alive(os.Getpid(), start+1) || Alive(0, 0) {
		t.Fatal("Alive does not tell this process by its start time")
	}
	// A child that has exited but is not reaped yet is a zombie: not alive.
	c := exec.Command("true")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	cs, _ := Start(c.Process.Pid)
	time.Sleep(200 * time.Millisecond)
	if Alive(c.Process.Pid, cs) {
		t.Error("a zombie counts as alive")
	}
	c.Wait()
}
