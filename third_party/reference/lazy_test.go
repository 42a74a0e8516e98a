package reference

import "testing"

// TestLazyRegexpsCompile: every expression compiled on first use is a
// valid one (regexp.MustCompile at init proved that before the patch).
func TestLazyRegexpsCompile(t *testing.T) {
	for _, r := range []*lazyRegexp{
		DigestRegexp, DomainRegexp, IdentifierRegexp, NameRegexp, ReferenceRegexp, TagRegexp,
		anchoredTagRegexp, anchoredDigestRegexp, anchoredNameRegexp, anchoredIdentifierRegexp,
	} {
		if r.Regexp().String() != r.String() {
			t.Errorf("%q compiled as %q", r.String(), r.Regexp().String())
		}
	}
}
