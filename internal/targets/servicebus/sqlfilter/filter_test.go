package sqlfilter

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// props is a message's properties for tests.
type props struct {
	user, sys map[string]Value
}

func (p props) User(name string) (Value, bool) {
	v, ok := p.user[name]
	return v, ok
}

func (p props) System(name string) (Value, bool) {
	for k, v := range p.sys {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return Value{}, false
}

var goldenMessage = props{
	user: map[string]Value{
		"color": Str("red"), "size": Num(10), "weight": Decimal(2.5), "flag": Boolean(true),
		"name": Str("O'Brien"), "path": Str("a%b"),
	},
	sys: map[string]Value{"MessageId": Str("m1"), "Label": Str("urgent"), "CorrelationId": Str("c1")},
}

// TestGolden runs testdata/golden.txt: each line is the expected outcome
// (true, false or error) and an expression.
func TestGolden(t *testing.T) {
	f, err := os.Open("testdata/golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		want, expr, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("malformed golden line %q", line)
		}
		n++
		filter, err := Parse(expr)
		if want == "error" {
			if err == nil {
				t.Errorf("Parse(%q) succeeded, want an error", expr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", expr, err)
			continue
		}
		if got := filter.Match(goldenMessage); got != (want == "true") {
			t.Errorf("%q matched = %v, want %s", expr, got, want)
		}
	}
	if n < 40 {
		t.Fatalf("only %d golden cases read", n)
	}
}

func TestLike(t *testing.T) {
	for _, tc := range []struct {
		s, pat string
		want   bool
	}{
		{"", "", true}, {"", "%", true}, {"a", "", false}, {"abc", "%c", true}, {"abc", "a%", true},
		{"abc", "%b%", true}, {"abc", "a_c", true}, {"abc", "a__c", false}, {"aaa", "%a%a%a%", true},
		{"aab", "%a%b", true}, {"ab", "%a%a%", false},
	} {
		if got := like([]rune(tc.s), []rune(tc.pat), 0); got != tc.want {
			t.Errorf("like(%q, %q) = %v, want %v", tc.s, tc.pat, got, tc.want)
		}
	}
}

func TestErrorsNameTheProblem(t *testing.T) {
	for expr, want := range map[string]string{
		"newid() = 'x'":  "not supported",
		"color = 'red":   "unterminated string",
		"":               "1=1",
		"color IS 'red'": "NULL",
	} {
		_, err := Parse(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error mentioning %q", expr, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("color = 'red' AND size > 5")
	f.Add("sys.Label LIKE 'a%' ESCAPE '!'")
	f.Add("NOT (a IN (1, 2, 'x')) OR EXISTS(b) OR c IS NOT NULL")
	f.Add("[odd name] <> -1.5e3")
	f.Add(strings.Repeat("(", 100) + "1=1" + strings.Repeat(")", 100))
	f.Add(strings.Repeat("NOT ", 100) + "1=1")
	f.Fuzz(func(t *testing.T, expr string) {
		filter, err := Parse(expr)
		if err != nil {
			return
		}
		_ = filter.Match(goldenMessage)
		_ = filter.Match(props{})
	})
}

func BenchmarkMatch(b *testing.B) {
	filter, err := Parse("color IN ('green', 'red') AND size >= 5 AND sys.Label LIKE 'urg%'")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		filter.Match(goldenMessage)
	}
}
