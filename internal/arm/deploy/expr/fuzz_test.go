package expr

import (
	"errors"
	"testing"
	"time"
)

// fuzzContext answers everything an expression can ask for, so fuzzed
// expressions get past the hooks into the functions.
func fuzzContext() *Context {
	rg := &ResourceGroup{Name: "rg", Location: "westus"}
	return &Context{
		Subscription:  &Subscription{ID: "s"},
		ResourceGroup: rg,
		Parameters:    StaticValues{"a": []any{int64(1), "two", map[string]any{"x": true}}, "s": "text", "n": int64(7)},
		Variables:     NewVariables(map[string]any{"v": "[parameters('a')]", "loop": "[variables('loop')]"}),
		Reference:     func(ReferenceRequest) (any, error) { return map[string]any{"p": "v"}, nil },
		References:    func(string, bool) ([]any, error) { return []any{int64(1)}, nil },
		List:          func(ListRequest) (any, error) { return map[string]any{"keys": []any{}}, nil },
		Zones:         func(string, string, string) []string { return []string{"1", "2"} },
		Now:           func() time.Time { return time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC) },
		NewGUID:       func() string { return "00000000-0000-4000-8000-000000000000" },
	}
}

// FuzzParse checks that no input makes Parse or Eval panic, that a parsed
// expression renders to text that parses back to the same tree, and that
// every failure is a *ParseError or an *EvalError.
func FuzzParse(f *testing.F) {
	for _, c := range readGoldenCases(f) {
		f.Add(c.input)
	}
	for _, s := range []string{"[", "[]", "[[", "['", "[''']", "[a.b.c(", "[f()[0]", "[x(1,)]", "[-", "[json('{')]", "[format('{0:#,##0.00;(#);z}', -1)]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) returned %T, not a *ParseError", s, err)
			}
			return
		}
		again, err := Parse(Template(e))
		if err != nil {
			t.Fatalf("Template(Parse(%q)) = %q does not parse: %v", s, Template(e), err)
		}
		if again.String() != e.String() {
			t.Fatalf("round trip of %q: %q then %q", s, e.String(), again.String())
		}
		if _, err := e.Eval(fuzzContext()); err != nil {
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("Eval(%q) returned %T (%v), not an *EvalError", s, err, err)
			}
		}
	})
}

// FuzzJSON checks the lenient JSON reader behind json() and base64ToJson().
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x",true,null]}`, `{'a': b}`, `[1,]`, `"\u00e9\ud83d\ude00"`, `/* c */ 1`, `{"a":`, `-`, `1e400`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseLenientJSON(s)
		if err != nil {
			return
		}
		// Whatever it read renders as JSON that reads back the same.
		back, err := parseLenientJSON(jsonText(v))
		if err != nil || !deepEqual(v, back) {
			t.Fatalf("%q read as %s, which reads back as %v (%v)", s, jsonText(v), back, err)
		}
	})
}

// FuzzFormat checks .NET-style number formatting for panics.
func FuzzFormat(f *testing.F) {
	for _, s := range []string{"{0:N2}", "{0:#,##0.00;(0)}", "{0,-5:X}", "{0:E3}", "{0:0%}", "{0:P}", "{{}}", "{0:(###) ###-####}"} {
		f.Add(s, int64(-1234567), 3.14159)
	}
	f.Fuzz(func(t *testing.T, format string, i int64, fl float64) {
		_, _ = compositeFormat(format, []any{i, fl, "s", true, nil})
		_, _ = compositeFormat(format, []any{fl})
	})
}
