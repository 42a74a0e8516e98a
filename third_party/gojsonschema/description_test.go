package gojsonschema

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"text/template"
)

// TestFormatErrorDescription: the patched formatErrorDescription (no
// text/template) gives what upstream's text/template gave, for every
// description DefaultLocale holds and for the edge cases an action can take.
func TestFormatErrorDescription(t *testing.T) {
	details := ErrorDetails{
		"allowed": "a, b", "dependency": "dep", "description": "desc", "error": "oops",
		"expected": "string", "field": "services.web.ports", "format": "date", "given": "integer",
		"i": 1, "j": 2, "key": "k", "max": 10, "min": 1.5, "multiple": 3, "number": 42,
		"pattern": "^a+$", "property": "image", "reference": "#/x", "status": 404,
		"type": "object", "x": true, "y": nil,
	}
	var formats []string
	loc := reflect.ValueOf(DefaultLocale{})
	for i := 0; i < loc.NumMethod(); i++ {
		if out := loc.Method(i).Call(nil); len(out) == 1 && out[0].Kind() == reflect.String {
			formats = append(formats, out[0].String())
		}
	}
	if len(formats) < 50 {
		t.Fatalf("%d descriptions in DefaultLocale, want 50 or more", len(formats))
	}
	formats = append(formats, "", "plain", "{{.missing}} is absent", "{{ .field }} spaced",
		"a {{.field}} and {{.field}}", "unclosed {{.field", "}} {{", "{{.}} whole")
	for _, f := range formats {
		if f == "{{.}} whole" || strings.HasPrefix(f, "unclosed") || f == "}} {{" {
			// text/template would print the map or refuse to parse: those
			// are left as written, which is what the patch promises.
			if got := formatErrorDescription(f, details); got != f {
				t.Errorf("%q: %q, want it left as written", f, got)
			}
			continue
		}
		var want bytes.Buffer
		if err := template.Must(template.New("").Parse(f)).Execute(&want, details); err != nil {
			t.Fatalf("%q: %v", f, err)
		}
		if got := formatErrorDescription(f, details); got != want.String() {
			t.Errorf("%q: %q, want %q", f, got, want.String())
		}
	}
}
