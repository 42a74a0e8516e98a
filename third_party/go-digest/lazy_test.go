package digest

import "testing"

// TestLazyRegexpsCompile: every expression compiled on first use is a
// valid one (regexp.MustCompile at init proved that before the patch).
func TestLazyRegexpsCompile(t *testing.T) {
	all := []*lazyRegexp{DigestRegexp, DigestRegexpAnchored}
	for _, r := range anchoredEncodedRegexps {
		all = append(all, r)
	}
	for _, r := range all {
		if r.Regexp().String() != r.String() {
			t.Errorf("%q compiled as %q", r.String(), r.Regexp().String())
		}
	}
	if !DigestRegexpAnchored.MatchString("sha256:" + "7173b809ca12ec5dee4506cd86be934c4596dd234ee82c0662eac04a8c2c71dc") {
		t.Error("a sha256 digest does not match DigestRegexpAnchored")
	}
}
