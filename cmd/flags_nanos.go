package cmd

import (
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/pflag"
)

// nanosDebug are the Nanos debugging flags: each sets a manifest option
// the Nanos kernel (or its strace klib) reads.
type nanosDebug struct {
	trace, syscallSummary, missingFiles bool
	noTrace                             []string
}

// apply adds the debugging flags the user set to the config's Debugflags
// and NoTrace (which --no-trace replaces, as in nanovms/ops).
func (d nanosDebug) apply(fl *pflag.FlagSet, c *lepton.Config) {
	if d.trace {
		c.Debugflags = appendNew(c.Debugflags, lepton.TraceFlags()...)
	}
	if d.syscallSummary {
		c.Debugflags = appendNew(c.Debugflags, "syscall_summary")
	}
	if d.missingFiles {
		c.Debugflags = appendNew(c.Debugflags, "missing_files")
	}
	override(fl, "no-trace", &c.NoTrace, d.noTrace)
}
