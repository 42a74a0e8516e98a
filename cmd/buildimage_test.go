package cmd

import (
	"io"
	"math"
	"runtime/debug"
	"testing"

	"github.com/opsdev/ops/lepton"
)

// TestBuildImageRestoresGC checks that a build, failed or not, gives the
// collector its settings back (ops run goes on supervising for hours).
func TestBuildImageRestoresGC(t *testing.T) {
	app := &App{Stdout: io.Discard, Stderr: io.Discard}
	gc := debug.SetGCPercent(100)
	defer debug.SetGCPercent(gc)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(limit)
	_, err := app.buildImage(lepton.Home{Dir: t.TempDir()}, lepton.PlanInput{Config: &lepton.Config{BaseVolumeSz: "not a size"}}, lepton.Target{})
	if err == nil {
		t.Fatal("a bad BaseVolumeSz built an image")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent %d after the build, want 100", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit %d after the build, want none", got)
	}
}
