package lepton

import (
	"runtime/debug"
	"sync"
)

// buildMemoryLimit is when a build's garbage is collected after all.
const buildMemoryLimit = 512 << 20

// Builder runs Build with the garbage collector held back until the
// build is done (ops build, run, instance create, image create, and each
// service's image in compose up). A build allocates a few megabytes in
// one burst, and on these nested machines each collection (its workers
// waking the other CPU) costs more than the memory it would give back:
// the python3 standard-library tree was collected three times, ~10 ms of
// a ~128 ms build, for 0.2 MB less peak memory. A memory limit still
// collects should a huge tree need it; commands that go on running (ops
// run) collect as usual afterwards.
//
// The collector's settings are the process's, so a process makes one
// Builder and every build goes through it: its builds run in turn, and
// none restores the settings under another. The zero value is ready.
type Builder struct {
	mu sync.Mutex // one build at a time holds the collector back
}

// Build is Build with the collector held back.
func (b *Builder) Build(home Home, in PlanInput, t Target) (*Built, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	gc := debug.SetGCPercent(-1)
	limit := debug.SetMemoryLimit(buildMemoryLimit)
	defer func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	}()
	return Build(home, in, t)
}
