package cmd

import (
	"runtime/debug"

	"github.com/opsdev/ops/lepton"
)

// buildMemoryLimit is when a build's garbage is collected after all.
const buildMemoryLimit = 512 << 20

// buildImage is lepton.Build with the garbage collector held back until
// the build is done (ops build, run, instance create, image create, and
// each service's image in compose up). A build allocates a few megabytes in one burst, and
// on these nested machines each collection (its workers waking the other
// CPU) costs more than the memory it would give back: the python3
// standard-library tree was collected three times, ~10 ms of a ~128 ms
// build, for 0.2 MB less peak memory. A memory limit still collects
// should a huge tree need it; commands that go on running (ops run) collect
// as usual afterwards.
func (a *App) buildImage(home lepton.Home, in lepton.PlanInput, t lepton.Target) (*lepton.Built, error) {
	// The settings are the process's: builds in turn, so none restores
	// them under another.
	a.buildMu.Lock()
	defer a.buildMu.Unlock()
	gc := debug.SetGCPercent(-1)
	limit := debug.SetMemoryLimit(buildMemoryLimit)
	defer func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	}()
	return lepton.Build(home, in, t)
}
