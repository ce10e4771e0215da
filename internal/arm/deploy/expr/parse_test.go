package expr

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestIsExpressionAndUnescape(t *testing.T) {
	for _, c := range []struct {
		in       string
		expr     bool
		unescape string
	}{
		{"[x()]", true, "[x()]"},
		{"[]", true, "[]"},
		{"[[x()]", false, "[x()]"},
		{"[[", false, "[["},
		{"[", false, "["},
		{"]", false, "]"},
		{"", false, ""},
		{"x[y]", false, "x[y]"},
		{"[y] x", false, "[y] x"},
		{"[[[x]", false, "[[x]"},
	} {
		if got := IsExpression(c.in); got != c.expr {
			t.Errorf("IsExpression(%q) = %v, want %v", c.in, got, c.expr)
		}
		if got := Unescape(c.in); !c.expr && got != c.unescape {
			t.Errorf("Unescape(%q) = %q, want %q", c.in, got, c.unescape)
		}
	}
}

// TestRoundTrip checks that String renders an expression that parses back
// to the same tree, and Template to the same template string meaning.
func TestRoundTrip(t *testing.T) {
	for _, s := range []string{
		"[concat('it''s', parameters('a')[0].b['c-d'], -5)]",
		"[map(range(0, 3), lambda('i', add(lambdaVariables('i'), 1)))]",
		"[contoso.greet('x')]",
		"[listKeys(resourceId('Microsoft.Storage/storageAccounts', 'a'), '2022-09-01').keys[0].value]",
		"[resourceGroup().location]",
		"['']",
		"[[literal]",
		"plain",
		"[]x",
	} {
		e, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		again, err := Parse(Template(e))
		if err != nil {
			t.Fatalf("Parse(Template(%q) = %q): %v", s, Template(e), err)
		}
		if again.String() != e.String() {
			t.Errorf("round trip of %q: %q then %q", s, e.String(), again.String())
		}
		v1, err1 := EvalString(s, nil)
		v2, err2 := EvalString(Template(e), nil)
		if (err1 == nil) != (err2 == nil) || err1 == nil && !deepEqual(v1, v2) {
			t.Errorf("%q and its Template %q evaluate differently: %v/%v, %v/%v", s, Template(e), v1, err1, v2, err2)
		}
	}
	if got := Template(MustParse("[[x]")); got != "[[x]" {
		t.Errorf("Template of the literal [x] = %q, want [[x]", got)
	}
}

func TestWalkAndCalls(t *testing.T) {
	e := MustParse("[reference(resourceId('Microsoft.Web/sites', parameters('site')), '2022-03-01').defaultHostName]")
	var names []string
	for _, c := range Calls(e) {
		names = append(names, c.Name)
	}
	if want := []string{"reference", "resourceId", "parameters"}; !slices.Equal(names, want) {
		t.Errorf("Calls = %v, want %v", names, want)
	}
	ref := Calls(e)[0]
	if _, ok := ref.Args[0].(*Call); !ok || ref.Pos() != 1 {
		t.Errorf("reference call: first argument %T at position %d", ref.Args[0], ref.Pos())
	}
	visited := 0
	Walk(e, func(Expr) bool { visited++; return visited < 3 })
	if visited != 3 {
		t.Errorf("Walk did not stop when told: visited %d", visited)
	}
}

func TestParseLimits(t *testing.T) {
	deep := "[" + strings.Repeat("not(", 250) + "true()" + strings.Repeat(")", 250) + "]"
	_, err := Parse(deep)
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "nests more than 200 levels") {
		t.Errorf("deep nesting: %v", err)
	}
	long := "['" + strings.Repeat("x", MaxExpressionLength) + "']"
	if _, err := Parse(long); err == nil || !strings.Contains(err.Error(), "ARM allows at most 24576") {
		t.Errorf("long expression: %v", err)
	}
	ok := "[" + strings.Repeat("not(", 150) + "true()" + strings.Repeat(")", 150) + "]"
	if v, err := EvalString(ok, nil); err != nil || v != true {
		t.Errorf("150 nested not() = %v, %v", v, err)
	}
	accessors := "[json('{}')" + strings.Repeat(".a", 300) + "]"
	if _, err := Parse(accessors); err == nil {
		t.Errorf("300 chained accessors parsed")
	}
}

func TestParseErrorMessage(t *testing.T) {
	_, err := Parse("[concat('a' 'b')]")
	want := "The language expression '[concat('a' 'b')]' is not valid: position 12: expected ',' or ')' in the arguments of 'concat', found string 'b'"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	// Positions count characters, not bytes.
	_, err = Parse("['é', x]")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Pos != 4 {
		t.Errorf("position after a multi-byte character: %v", err)
	}
}

func TestFunctionTable(t *testing.T) {
	names := Functions()
	for _, want := range []string{"concat", "resourceId", "uniqueString", "guid", "reference", "lambda", "utcNow", "parseCidr"} {
		if !slices.Contains(names, want) {
			t.Errorf("Functions() lacks %s", want)
		}
	}
	if !IsFunction("LISTKEYS") || !IsFunction("toupper") || IsFunction("toLowr") {
		t.Errorf("IsFunction is wrong")
	}
	for _, f := range functionList {
		if f.eval == nil && f.lazy == nil {
			t.Errorf("%s has no implementation", f.name)
		}
		if f.maxArgs >= 0 && f.maxArgs < f.minArgs {
			t.Errorf("%s: maxArgs %d < minArgs %d", f.name, f.maxArgs, f.minArgs)
		}
	}
}
