package query

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"
)

var _ Message = (*MessageData)(nil)

// telemetry is a typical device message: string properties, a JSON body
// and a twin.
func telemetry() *MessageData {
	return &MessageData{
		Properties: map[string]string{"temperature": "35.5", "level": "critical", "site": "Berlin", "a": "x", "b": "y"},
		SystemProperties: map[string]string{
			SysContentType: "application/json", SysContentEncoding: "utf-8",
			SysConnectionDeviceID: "thermostat-7", SysEnqueuedTime: "2024-05-01T10:00:00Z",
		},
		Payload:  []byte(`{"Weather": {"Temperature": 55.2, "Humidity": 40, "Station": "Tegel"}, "readings": [1, 2, 3]}`),
		TwinJSON: []byte(`{"tags": {"region": "eu", "floor": 3}, "properties": {"desired": {}, "reported": {"fw": "2.1"}}}`),
	}
}

func mustCompile(t testing.TB, cond string) *Condition {
	t.Helper()
	c, err := Compile(cond)
	if err != nil {
		t.Fatalf("Compile(%q): %v", cond, err)
	}
	return c
}

func TestLexerTakesTheLongestMatchThenTheEarliestRule(t *testing.T) {
	tests := []struct {
		src  string
		want string // kind:text tokens
	}{
		{"x-1", "ident:x-1"},
		{"x - 1", "ident:x minus:- int:1"},
		{"3", "int:3"},
		{"3-4", "ident:3-4"},
		{"-3", "int:-3"},
		{"1 - -2", "int:1 minus:- int:-2"},
		{"3.14", "real:3.14"},
		{"3.14.15", "ident:3.14.15"},
		{"e5", "real:e5"},
		{"0x1F", "hex:0x1F"},
		{"0xG", "ident:0xG"},
		{"true", "true:true"},
		{"TRUE", "ident:TRUE"},
		{"True", "ident:True"},
		{"and AND And", "and:and and:AND and:And"},
		{"android", "ident:android"},
		{"'a'", "string:'a'"},
		{"'a'b", "ident:'a'b"},
		{"'a' || 'b'", "string:'a' concat:|| string:'b'"},
		{"'a'||'b'", "ident:'a'||'b'"},
		{"a!='b'", "ident:a! eq:= string:'b'"},
		{"a != 'b'", "ident:a ne:!= string:'b'"},
		{"4 %3", "int:4 ident:%3"},
		{"$body.a[0].b", "sysprop:$body.a[0].b"},
		{"$", "ident:$"},
		{"a[0]", "querypath:a[0]"},
		{"{ $x }", "lbrace:{ sysprop:$x rbrace:}"},
		{"a /* c */ b", "ident:a ident:b"},
		{"a ?? b", "ident:a coalesce:?? ident:b"},
		{"'abc", "unterminated:'abc"},
		{`'a\nb'`, "unterminated:'a unknown:\\ ident:nb'"},
		{"@;:?", "unknown:@ unknown:; unknown:: unknown:?"},
		{"from FROM fromage", "reserved:from reserved:FROM ident:fromage"},
	}
	names := map[tokenKind]string{
		tokIdent: "ident", tokMinus: "minus", tokInt: "int", tokReal: "real", tokHex: "hex", tokTrue: "true",
		tokAnd: "and", tokString: "string", tokConcat: "concat", tokEq: "eq", tokNe: "ne", tokSysProp: "sysprop",
		tokQueryPath: "querypath", tokLBrace: "lbrace", tokRBrace: "rbrace", tokCoalesce: "coalesce",
		tokUnterminated: "unterminated", tokUnknown: "unknown", tokReserved: "reserved",
	}
	for _, tt := range tests {
		var got []string
		for _, tok := range lex(tt.src) {
			if tok.kind != tokEOF {
				got = append(got, names[tok.kind]+":"+tok.text)
			}
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("lex(%q) = %s, want %s", tt.src, g, tt.want)
		}
	}
}

func TestPropertyConditionsDoNotAllocate(t *testing.T) {
	msg := telemetry()
	in := NewInput(msg)
	for _, cond := range []string{
		"as_number(temperature) > 30 AND level = 'critical'",
		"level = 'critical' OR site <> 'Paris'",
		"$connectionDeviceId = 'thermostat-7' AND $enqueuedTime > '2024-01-01'",
		"starts_with(site, 'Ber') AND ends_with(site, 'lin') AND contains(site, 'rl')",
		"lower(level) = 'critical' AND upper(site) = 'BERLIN'",
		"concat(a, '-', b) = 'x-y' AND a || b = 'xy'",
		"substring(site, 1, 3) = 'erl' AND index_of(site, 'lin') = 3 AND length(site) = 6",
		"is_defined(missing) OR as_number(' (1,000) ') = -1000",
		"abs(as_number(temperature) - 30) > power(2, 2) AND sign(-1) = -1",
		"(missing ?? 'fallback') = 'fallback'",
	} {
		c := mustCompile(t, cond)
		if got := c.Eval(in); got != True {
			t.Errorf("%q = %s, want true", cond, got)
		}
		if n := testing.AllocsPerRun(100, func() { c.Eval(in) }); n != 0 {
			t.Errorf("%q: %v allocations per Eval, want 0", cond, n)
		}
	}
}

// A routing worker reuses one Input, so once its buffers have grown even
// body and twin conditions, parsing included, stop allocating.
func TestBodyConditionsDoNotAllocateOnceWarm(t *testing.T) {
	msg := telemetry()
	in := NewInput(msg)
	for _, cond := range []string{
		"$body.Weather.Temperature > 50",
		"$body.Weather.Station = 'Tegel' AND $body.readings[2] = 3",
		"$twin.tags.region = 'eu' AND $twin.properties.reported.fw = '2.1'",
	} {
		c := mustCompile(t, cond)
		if got := c.Eval(in); got != True {
			t.Errorf("%q = %s, want true", cond, got)
		}
		if n := testing.AllocsPerRun(100, func() { in.Reset(msg); c.Eval(in) }); n != 0 {
			t.Errorf("%q: %v allocations per message, want 0", cond, n)
		}
	}
}

// countingMessage counts how often the body and the twin are fetched.
type countingMessage struct {
	*MessageData
	bodies, twins int
}

func (m *countingMessage) Body() []byte { m.bodies++; return m.MessageData.Body() }
func (m *countingMessage) Twin() []byte { m.twins++; return m.MessageData.Twin() }

func TestBodyAndTwinAreParsedAtMostOncePerMessage(t *testing.T) {
	var conds []*Condition
	for _, src := range []string{
		"level = 'critical'",
		"$body.Weather.Temperature > 50",
		"$body.Weather.Humidity < 50 AND $twin.tags.region = 'eu'",
		"is_defined($body.nothing) OR $twin.tags.floor = 3",
		"$body.readings[0] = 1",
	} {
		conds = append(conds, mustCompile(t, src))
	}
	in := &Input{}
	for range 3 {
		msg := &countingMessage{MessageData: telemetry()}
		in.Reset(msg)
		before := in.parsed
		for range 4 {
			for _, c := range conds {
				c.Eval(in)
			}
		}
		if msg.bodies != 1 || msg.twins != 1 || in.parsed-before != 2 {
			t.Fatalf("Body() %d times, Twin() %d times, %d parses; want 1, 1, 2", msg.bodies, msg.twins, in.parsed-before)
		}
	}

	// Conditions that do not need the body never fetch it.
	msg := &countingMessage{MessageData: telemetry()}
	in.Reset(msg)
	mustCompile(t, "level = 'critical' OR $body.x = 1").Eval(in)
	mustCompile(t, "false AND $twin.tags.x = 1").Eval(in)
	if msg.bodies != 0 || msg.twins != 0 {
		t.Errorf("short-circuited conditions fetched the body %d times and the twin %d times", msg.bodies, msg.twins)
	}

	// A body that is not JSON is not even fetched, and not retried.
	msg = &countingMessage{MessageData: telemetry()}
	msg.SystemProperties = map[string]string{SysContentType: "application/octet-stream"}
	in.Reset(msg)
	c := mustCompile(t, "$body.a = 1")
	for range 3 {
		if got := c.Eval(in); got != Undefined {
			t.Errorf("$body.a on a binary body = %s, want undefined", got)
		}
	}
	if msg.bodies != 0 {
		t.Errorf("binary body fetched %d times", msg.bodies)
	}
}

func TestUsesBodyAndUsesTwin(t *testing.T) {
	for _, tt := range []struct {
		cond       string
		body, twin bool
	}{
		{"level = 'critical'", false, false},
		{"$body.a = 1", true, false},
		{"{$BODY.a} = 1", true, false},
		{"$twin.tags.x = 1", false, true},
		{"$body.a = 1 OR $Twin.tags.x = 1", true, true},
		{"$body = 'x'", false, false}, // a system property named "body"
		{"$body[0] = 'x'", false, false},
		{"", false, false},
	} {
		c := mustCompile(t, tt.cond)
		if c.UsesBody() != tt.body || c.UsesTwin() != tt.twin {
			t.Errorf("%q: UsesBody %v UsesTwin %v, want %v %v", tt.cond, c.UsesBody(), c.UsesTwin(), tt.body, tt.twin)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	_, err := Compile("1 + 'a' = 2 OR\n  'b' - 1 = 0")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 2 {
		t.Fatalf("want two errors, got %v", err)
	}
	if list[0].Start != (Position{1, 3}) || list[1].Start != (Position{2, 7}) || list[1].End != (Position{2, 8}) {
		t.Errorf("positions %v-%v and %v-%v", list[0].Start, list[0].End, list[1].Start, list[1].End)
	}
	if !strings.HasSuffix(err.Error(), "(and 1 more errors)") {
		t.Errorf("Error() = %q", err.Error())
	}
	var first *Error
	if !errors.As(err, &first) || first != list[0] {
		t.Errorf("errors.As(*Error) did not find the first error")
	}

	_, err = Compile("STARTSWITH(level, 'c')")
	if got, want := err.Error(), "Invalid built-in function 'STARTSWITH' at 1:1; did you mean STARTS_WITH?"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_, err = Compile("'unterminated")
	if e := err.(ErrorList)[0]; e.Start != (Position{1, 1}) || e.End != (Position{1, 14}) {
		t.Errorf("unterminated string spans %v-%v", e.Start, e.End)
	}
}

func TestNestingIsBounded(t *testing.T) {
	deep := strings.Repeat("(", maxHeight+1) + "1" + strings.Repeat(")", maxHeight+1) + " = 1"
	if _, err := Compile(deep); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Errorf("%d parentheses: %v", maxHeight+1, err)
	}
	unclosed := strings.Repeat("(", 100000)
	if _, err := Compile(unclosed); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Errorf("100000 open parentheses: %v", err)
	}
	negations := strings.Repeat("NOT ", 100000) + "true"
	if _, err := Compile(negations); err == nil {
		t.Errorf("100000 NOTs compiled")
	}
	// A long but flat chain is fine up to the bound.
	ors := "level = '0'" + strings.Repeat(" OR level = 'x'", 400) + " OR level = 'critical'"
	if got := mustCompile(t, ors).EvalMessage(telemetry()); got != True {
		t.Errorf("chain of 400 ORs = %s", got)
	}
	ok := strings.Repeat("(", 300) + "true" + strings.Repeat(")", 300)
	if got := mustCompile(t, ok).EvalMessage(nil); got != True {
		t.Errorf("300 parentheses = %s", got)
	}
}

func TestEmptyConditionIsUndefined(t *testing.T) {
	for _, src := range []string{"", " \n\t", "/* nothing */"} {
		if got := mustCompile(t, src).EvalMessage(telemetry()); got != Undefined {
			t.Errorf("%q = %s, want undefined", src, got)
		}
	}
}

func TestNilInputAndMessage(t *testing.T) {
	c := mustCompile(t, "is_defined(a) OR $body.x = 1 OR $twin.tags.y = 2 OR $sys = 'x' OR true")
	if got := c.Eval(nil); got != True {
		t.Errorf("Eval(nil) = %s", got)
	}
	if got := c.EvalMessage(nil); got != True {
		t.Errorf("EvalMessage(nil) = %s", got)
	}
}

func TestMustCompilePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustCompile of an invalid condition did not panic")
		}
	}()
	MustCompile("a = ")
}

func TestResultString(t *testing.T) {
	if True.String() != "true" || False.String() != "false" || Undefined.String() != "undefined" || Result(9).String() != "undefined" {
		t.Error("Result strings do not match the route test API")
	}
}

func TestConditionsAreSafeForConcurrentUse(t *testing.T) {
	c := mustCompile(t, "lower(level) = 'critical' AND $body.Weather.Temperature > 50 AND concat(site, '!') = 'Berlin!'")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := &Input{}
			for range 500 {
				in.Reset(telemetry())
				if got := c.Eval(in); got != True {
					t.Errorf("concurrent Eval = %s", got)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Strings built in the arena must stay intact when a later append in the
// same evaluation moves the arena.
func TestArenaGrowthKeepsEarlierStrings(t *testing.T) {
	long := strings.Repeat("ab", 5000)
	msg := &MessageData{Properties: map[string]string{"p": long, "q": "Q"}}
	c := mustCompile(t, "concat(upper(p), lower(q), upper(p), lower(q)) = concat(upper(p), 'q', upper(p), 'q')")
	in := NewInput(msg)
	for range 3 {
		if got := c.Eval(in); got != True {
			t.Fatalf("got %s", got)
		}
	}
}

func TestLookupFold(t *testing.T) {
	m := map[string]string{"Temperature": "1", "x": "2"}
	for name, want := range map[string]string{"Temperature": "1", "TEMPERATURE": "1", "temperature": "1", "X": "2"} {
		if got, ok := LookupFold(m, name); !ok || got != want {
			t.Errorf("LookupFold(%q) = %q, %v", name, got, ok)
		}
	}
	if _, ok := LookupFold(m, "missing"); ok {
		t.Error("found a missing key")
	}
	if _, ok := LookupFold(nil, "x"); ok {
		t.Error("found a key in a nil map")
	}
}

func TestAsNumberFollowsDotNet(t *testing.T) {
	tests := map[string]float64{
		"3": 3, " 3 ": 3, "+3": 3, "-3": -3, "3-": -3, "3+": 3, "(3)": -3, "1,234": 1234, "1,234,567.5": 1234567.5,
		"1,,2": 12, "1,": 1, ".5": 0.5, "5.": 5, "1e3": 1000, "1E+3": 1000, "1.5e-3": 0.0015, "¤5": 5, "-¤5": -5,
		"5¤": 5, "(¤5)": -5, "\t\n7\r": 7, "Infinity": math.Inf(1), "-infinity": math.Inf(-1), "1e400": math.Inf(1),
		"007": 7, "-0": 0,
	}
	in := &Input{}
	for s, want := range tests {
		got, ok := parseDotNetNumber(in, s)
		if !ok || got != want {
			t.Errorf("as_number(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", " ", "abc", "0x10", "1 2", "- 3", "+-3", "3-+", "(3", "3)", "((3))", ",5", ".", "e5", "1e",
		"NaN", "-NaN", "1.2.3", "1_000", "inf", "¤", "¤¤5", "--3", "3 -3", "1e5.5"} {
		if got, ok := parseDotNetNumber(in, s); ok {
			t.Errorf("as_number(%q) = %v, want undefined", s, got)
		}
	}
	if len(in.arena) != 0 {
		t.Errorf("as_number left %d bytes in the arena", len(in.arena))
	}
}

func TestCompareUTF16MatchesDotNetOrdinal(t *testing.T) {
	words := []string{"", "a", "A", "ab", "b", "é", "ﬁ", "\uffff", "😀", "😀a", "a😀", "𝄞", "\ue000", "日本", "z\x80", "z\xff"}
	for _, a := range words {
		for _, b := range words {
			want := slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
			if a != b && want == 0 { // invalid UTF-8 decodes alike; bytes decide
				want = strings.Compare(a, b)
			}
			if got := compareUTF16(a, b); got != want {
				t.Errorf("compareUTF16(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestSubstringNeverPanics(t *testing.T) {
	// IoT Edge's TestSubstringLimits: every start and length in [-10, 10].
	in := NewInput(telemetry())
	for i := -10; i <= 10; i++ {
		mustCompile(t, fmt.Sprintf("substring('hello', %d) = 'he'", i)).Eval(in)
		mustCompile(t, fmt.Sprintf("substring('h😀llo', %d) = 'he'", i)).Eval(in)
		for j := -10; j <= 10; j++ {
			mustCompile(t, fmt.Sprintf("substring('hello', %d, %d) = 'he'", i, j)).Eval(in)
			mustCompile(t, fmt.Sprintf("substring('😀😀', %d, %d) = 'he'", i, j)).Eval(in)
		}
	}
}

func TestSystemPropertyNamesAreCanonical(t *testing.T) {
	var asked []string
	msg := &recordingMessage{asked: &asked}
	for _, src := range []string{"$CONTENTTYPE = 'x'", "$ConnectionDeviceID = 'x'", "$DT-SUBJECT = 'x'", "$custom = 'x'"} {
		mustCompile(t, src).EvalMessage(msg)
	}
	want := []string{SysContentType, SysConnectionDeviceID, SysDTSubject, "custom"}
	if !slices.Equal(asked, want) {
		t.Errorf("SystemProperty asked for %q, want %q", asked, want)
	}
}

type recordingMessage struct{ asked *[]string }

func (m *recordingMessage) AppProperty(string) (string, bool) { return "", false }
func (m *recordingMessage) SystemProperty(name string) (string, bool) {
	*m.asked = append(*m.asked, name)
	return "", false
}
func (m *recordingMessage) Body() []byte { return nil }
func (m *recordingMessage) Twin() []byte { return nil }
