package gojsonschema

import "testing"

// TestLazyFormatCheckers: the format checkers whose expressions are now
// compiled on first use accept and refuse as before (the patch's one
// change; upstream's tests, with their 672 kB of testdata, stay upstream).
func TestLazyFormatCheckers(t *testing.T) {
	for _, tc := range []struct {
		format string
		in     string
		ok     bool
	}{
		{"hostname", "example.com", true},
		{"hostname", "a-b.c0", true},
		{"hostname", "-bad.example", false},
		{"hostname", "under_score.example", false},
		{"uri-template", "http://example.com/{id}", true},
		{"uri-template", "http://example.com/{id", false},
		{"uuid", "01234567-89ab-cdef-0123-456789abcdef", true},
		{"uuid", "01234567-89ab-cdef-0123-456789ABCDEF", false},
		{"json-pointer", "/a/b~0c~1d", true},
		{"json-pointer", "a/b", false},
		{"relative-json-pointer", "0#", true},
		{"relative-json-pointer", "1/a/b", true},
		{"relative-json-pointer", "01/a", false},
	} {
		if got := FormatCheckers.IsFormat(tc.format, tc.in); got != tc.ok {
			t.Errorf("%s %q: %v, want %v", tc.format, tc.in, got, tc.ok)
		}
	}
}
