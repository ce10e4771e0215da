package expr

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Values are JSON-like Go values:
//
//	string, int64 (every ARM integer), float64 (only from json(), float() or
//	a non-integral JSON number), bool, nil, []any, map[string]any.
//
// ARM's integers are .NET longs, so int64 is the one integer type; a float64
// that holds an integral value is accepted wherever an integer is expected,
// because encoding/json produces those. Normalize converts decoded JSON into
// this model once, so the functions never see json.Number or int.

// Normalize converts a value decoded by encoding/json (or built by hand with
// int, []string, map[string]string…) into the package's value model:
// integral float64 and json.Number become int64, other numbers float64.
// Slices and maps are copied.
func Normalize(v any) any {
	switch t := v.(type) {
	case nil, string, bool, int64:
		return t
	case int:
		return int64(t)
	case int32:
		return int64(t)
	case float64:
		return normalizeFloat(t)
	case float32:
		return normalizeFloat(float64(t))
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, err := t.Float64()
		if err != nil {
			return t.String()
		}
		return f
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = Normalize(e)
		}
		return out
	case []string:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = e
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = Normalize(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = e
		}
		return out
	}
	return v
}

func normalizeFloat(f float64) any {
	if f == math.Trunc(f) && f >= -9.2e18 && f <= 9.2e18 {
		return int64(f)
	}
	return f
}

// typeName is the ARM name of a value's type, as error messages spell it.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "Null"
	case string:
		return "String"
	case int64, int:
		return "Integer"
	case float64:
		return "Float"
	case bool:
		return "Boolean"
	case []any:
		return "Array"
	case map[string]any:
		return "Object"
	}
	return "Unknown"
}

// asInt accepts an int64 or an integral float64.
func asInt(v any) (int64, bool) {
	switch t := v.(type) {
	case int64:
		return t, true
	case int:
		return int64(t), true
	case float64:
		if t == math.Trunc(t) && t >= -9.2e18 && t <= 9.2e18 {
			return int64(t), true
		}
	}
	return 0, false
}

// deepEqual is ARM's equals(): JSON equality, case-sensitive for strings and
// property names, integers and floats compared by value.
func deepEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case int64, float64, int:
		return numbersEqual(a, b)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !deepEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !deepEqual(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

func numbersEqual(a, b any) bool {
	ai, aInt := asInt(a)
	bi, bInt := asInt(b)
	if aInt && bInt {
		return ai == bi
	}
	af, aok := asFloat(a)
	bf, bok := asFloat(b)
	return aok && bok && af == bf
}

func asFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case int64:
		return float64(t), true
	case int:
		return float64(t), true
	case float64:
		return t, true
	}
	return 0, false
}

// Equal is ARM's equals() for the deployment engine's own comparisons
// (allowedValues, whatIf).
func Equal(a, b any) bool { return deepEqual(a, b) }

// Lookup finds a property (or a template member) the way ARM does: the
// exact name first, then ignoring case.
func Lookup(m map[string]any, name string) (any, bool) { return lookupProperty(m, name) }

// lookupProperty finds a property the way ARM does: exact name first, then
// case-insensitively.
func lookupProperty(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// sortedKeys orders property names as .NET's OrdinalIgnoreCase does
// (upper-cased ordinal), with the lower-case spelling first on a tie. ARM
// keeps declaration order, which a Go map has lost; the tie-break matches
// the order ARM's items() produces for {'abcKey','ABCKey'}.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

func compareKeys(a, b string) int {
	if c := strings.Compare(strings.ToUpper(a), strings.ToUpper(b)); c != 0 {
		return c
	}
	return strings.Compare(swapCase(a), swapCase(b))
}

func swapCase(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, s)
}

// jsonText renders a value as compact JSON the way Newtonsoft's
// Formatting.None does: no HTML escaping, non-ASCII kept as is.
func jsonText(v any) string {
	var b strings.Builder
	writeJSON(&b, v)
	return b.String()
}

func writeJSON(b *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		writeJSONString(b, t)
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case int:
		b.WriteString(strconv.Itoa(t))
	case float64:
		b.WriteString(formatFloat(t))
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		b.WriteByte('{')
		for i, k := range sortedKeys(t) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, k)
			b.WriteByte(':')
			writeJSON(b, t[k])
		}
		b.WriteByte('}')
	default:
		b.WriteString("null")
	}
}

func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte("0123456789abcdef"[r>>4])
				b.WriteByte("0123456789abcdef"[r&0xF])
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// formatFloat renders a double as .NET Core's Double.ToString() does for
// the common cases: shortest round-trip digits, "E+" exponents.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	abs := math.Abs(f)
	if abs != 0 && (abs >= 1e15 || abs < 1e-5) {
		s := strconv.FormatFloat(f, 'E', -1, 64)
		// .NET writes at least two exponent digits: 1E+15, 1E-05.
		return s
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// stringify is how concat(), string() and format() turn a scalar into text:
// booleans as .NET prints them (True/False), null as empty.
func stringify(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		if t {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(t, 10)
	case int:
		return strconv.Itoa(t)
	case float64:
		return formatFloat(t)
	}
	return jsonText(v)
}

// UTF-16 helpers: ARM strings are .NET strings, so length(), substring(),
// take(), skip() and indexOf() count UTF-16 code units, not bytes or runes.

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func utf16Len(s string) int {
	if isASCII(s) {
		return len(s)
	}
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// utf16Slice returns the code units [start, end) of s; a surrogate pair cut
// in half becomes U+FFFD, since a Go string can't hold half a pair.
func utf16Slice(s string, start, end int) string {
	if isASCII(s) {
		return s[start:end]
	}
	units := utf16.Encode([]rune(s))
	return string(utf16.Decode(units[start:end]))
}

// utf16Index converts a rune index into a code-unit index.
func utf16Index(runes []rune, runeIndex int) int {
	n := 0
	for _, r := range runes[:runeIndex] {
		n += utf16.RuneLen(r)
	}
	return n
}
