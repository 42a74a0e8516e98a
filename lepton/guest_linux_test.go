package lepton

import (
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
)

func TestLinuxCommandLine(t *testing.T) {
	cases := []struct {
		debug    bool
		khz      int
		has, not []string
	}{
		{false, 2596142, []string{"noreplace-smp", "tsc_early_khz=2596142", "quiet"}, []string{"ops.debug"}},
		{false, 0, []string{"noreplace-smp", "cryptomgr.notests", "initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs"}, []string{"tsc_early_khz"}},
		{true, 0, []string{"ops.debug=1"}, []string{"quiet"}},
	}
	for _, tc := range cases {
		s := " " + linuxCommandLine(tc.debug, tc.khz, arch.AMD64) + " "
		for _, w := range tc.has {
			if !strings.Contains(s, " "+w+" ") {
				t.Errorf("%q lacks %q", s, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(s, " "+w) {
				t.Errorf("%q has %q", s, w)
			}
		}
	}
}
