package lepton

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestBuildImageRestoresGC checks that a build, failed or not, gives the
// collector its settings back (ops run goes on supervising for hours).
func TestBuildImageRestoresGC(t *testing.T) {
	var b Builder
	gc := debug.SetGCPercent(100)
	defer debug.SetGCPercent(gc)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(limit)
	_, err := b.Build(Home{Dir: t.TempDir()}, PlanInput{Config: &Config{BaseVolumeSz: "not a size"}}, Target{})
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
