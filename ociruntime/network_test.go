package ociruntime

import (
	"strings"
	"testing"
)

// TestClaimVeth: a mirror's tap that a VM holds refuses a second VM in
// the namespace; one nobody holds is a leftover to remove.
func TestClaimVeth(t *testing.T) {
	for _, tt := range []struct {
		exists, held bool
		unmirror     bool
		err          string
	}{
		{false, false, false, ""},
		{true, true, false, "one unikernel per network namespace: eth0 (10.88.0.5/24) is another container's VM already"},
		{true, false, true, ""},
	} {
		u, err := claimVeth(tt.exists, tt.held, "eth0", "10.88.0.5/24")
		if u != tt.unmirror || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("exists %v held %v: unmirror %v, %v", tt.exists, tt.held, u, err)
		}
	}
}
