package query

import (
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// typeSet is a set of static types a function parameter accepts.
type typeSet uint8

func (s typeSet) has(t staticType) bool { return s&(1<<t) != 0 }

// A $body or $twin value may be of any JSON type, so every parameter
// accepts it and the function checks the type at run time.
const (
	acceptString typeSet = 1<<tyString | 1<<tyDynamic
	acceptNumber typeSet = 1<<tyNumber | 1<<tyDynamic
	acceptAny    typeSet = 1<<tyString | 1<<tyNumber | 1<<tyBool | 1<<tyNull | 1<<tyUndefined | 1<<tyDynamic
)

// builtin is one function of IoT Hub's routing query language. Names are
// case-insensitive; argument types are checked when a condition compiles,
// as IoT Hub does ("Invalid arguments to built-in function ..."), and an
// argument of the right type but an unusable value (a missing property, a
// failed AS_NUMBER, an index out of range) makes the result undefined.
type builtin struct {
	name      string
	params    []typeSet
	optional  int  // how many trailing params may be left out
	variadic  bool // the last param repeats (CONCAT)
	result    staticType
	signature string
	fn1       func(in *Input, a value) value
	fn2       func(in *Input, a, b value) value
	fn3       func(in *Input, a, b, c value) value
}

func (b *builtin) accepts(args []staticType) bool {
	n := len(args)
	switch {
	case n < len(b.params)-b.optional:
		return false
	case n > len(b.params) && !b.variadic:
		return false
	}
	for i, t := range args {
		p := b.params[min(i, len(b.params)-1)]
		if !p.has(t) {
			return false
		}
	}
	return true
}

// builtinOrder lists the functions as IoT Hub documents them: math, type
// checking and conversion, strings.
var builtinOrder = []string{
	"abs", "exp", "power", "square", "ceiling", "floor", "sign", "sqrt",
	"as_number", "is_array", "is_bool", "is_defined", "is_null", "is_number", "is_object", "is_primitive", "is_string",
	"concat", "length", "lower", "upper", "substring", "index_of", "starts_with", "ends_with", "contains",
}

// builtins is read-only after package initialisation.
var builtins = map[string]*builtin{
	"abs":     math1("abs", math.Abs),
	"exp":     math1("exp", math.Exp),
	"ceiling": math1("ceiling", math.Ceil),
	"floor":   math1("floor", math.Floor),
	"sqrt":    math1("sqrt", math.Sqrt),
	"square":  math1("square", func(x float64) float64 { return x * x }),
	"sign": math1("sign", func(x float64) float64 {
		switch {
		case x > 0:
			return 1
		case x < 0:
			return -1
		}
		return 0
	}),
	"power": {name: "power", params: []typeSet{acceptNumber, acceptNumber}, result: tyNumber,
		signature: "power(number, number)", fn2: power},
	"as_number": {name: "as_number", params: []typeSet{acceptString | acceptNumber}, result: tyNumber,
		signature: "as_number(string) or as_number(number)", fn1: asNumber},

	"is_array":     isKind("is_array", func(v value) bool { return v.kind == kindArray }),
	"is_bool":      isKind("is_bool", func(v value) bool { return v.kind == kindBool }),
	"is_defined":   isKind("is_defined", func(v value) bool { return v.kind != kindUndefined }),
	"is_null":      isKind("is_null", func(v value) bool { return v.kind == kindNull }),
	"is_number":    isKind("is_number", func(v value) bool { return v.kind == kindNumber && !math.IsInf(v.n, 0) }),
	"is_object":    isKind("is_object", func(v value) bool { return v.kind == kindObject }),
	"is_primitive": isKind("is_primitive", func(v value) bool { return v.kind >= kindBool && v.kind <= kindNull }),
	"is_string":    isKind("is_string", func(v value) bool { return v.kind == kindString }),

	"concat": {name: "concat", params: []typeSet{acceptString, acceptString}, variadic: true, result: tyString,
		signature: "concat(string, string, ...)"},
	"length": {name: "length", params: []typeSet{acceptString}, result: tyNumber,
		signature: "length(string)", fn1: length},
	"lower": {name: "lower", params: []typeSet{acceptString}, result: tyString,
		signature: "lower(string)", fn1: func(in *Input, a value) value { return mapCase(in, a, unicode.ToLower) }},
	"upper": {name: "upper", params: []typeSet{acceptString}, result: tyString,
		signature: "upper(string)", fn1: func(in *Input, a value) value { return mapCase(in, a, unicode.ToUpper) }},
	"substring": {name: "substring", params: []typeSet{acceptString, acceptNumber, acceptNumber}, optional: 1, result: tyString,
		signature: "substring(string, number) or substring(string, number, number)", fn2: substringFrom, fn3: substringFromFor},
	"index_of": {name: "index_of", params: []typeSet{acceptString, acceptString}, result: tyNumber,
		signature: "index_of(string, string)", fn2: indexOf},
	"starts_with": str2("starts_with", strings.HasPrefix),
	"ends_with":   str2("ends_with", strings.HasSuffix),
	"contains":    str2("contains", strings.Contains),
}

// math1 is a one-argument function on numbers. NaN results (sqrt(-4))
// are undefined, infinities (exp(4000)) are not.
func math1(name string, f func(float64) float64) *builtin {
	return &builtin{name: name, params: []typeSet{acceptNumber}, result: tyNumber, signature: name + "(number)",
		fn1: func(_ *Input, a value) value {
			if a.kind != kindNumber {
				return undefinedValue
			}
			return numberValue(f(a.n))
		}}
}

func power(_ *Input, a, b value) value {
	if a.kind != kindNumber || b.kind != kindNumber {
		return undefinedValue
	}
	return numberValue(math.Pow(a.n, b.n))
}

// asNumber converts a string the way .NET's double.TryParse does with
// NumberStyles.Any; a number passes through; anything else is undefined.
func asNumber(in *Input, a value) value {
	switch a.kind {
	case kindNumber:
		return a
	case kindString:
		if f, ok := parseDotNetNumber(in, a.s); ok {
			return numberValue(f)
		}
	}
	return undefinedValue
}

// isKind is a type test. Type tests are total: they answer false, never
// undefined, for a missing property. IS_NUMBER is false for infinities, as
// in IoT Hub, while IS_PRIMITIVE counts them as numbers.
func isKind(name string, test func(value) bool) *builtin {
	return &builtin{name: name, params: []typeSet{acceptAny}, result: tyBool, signature: name + "(any)",
		fn1: func(_ *Input, a value) value { return boolValue(test(a)) }}
}

func str2(name string, f func(s, sub string) bool) *builtin {
	return &builtin{name: name, params: []typeSet{acceptString, acceptString}, result: tyBool,
		signature: name + "(string, string)",
		fn2: func(_ *Input, a, b value) value {
			if a.kind != kindString || b.kind != kindString {
				return undefinedValue
			}
			return boolValue(f(a.s, b.s))
		}}
}

// length counts UTF-16 units, as .NET's String.Length does.
func length(_ *Input, a value) value {
	if a.kind != kindString {
		return undefinedValue
	}
	return numberValue(float64(utf16Len(a.s)))
}

// mapCase is LOWER and UPPER with invariant, per-character case mapping.
// A string that does not change is returned as is; otherwise the result is
// built in the arena.
func mapCase(in *Input, a value, f func(rune) rune) value {
	if a.kind != kindString {
		return undefinedValue
	}
	s := a.s
	for i, r := range s {
		if f(r) == r {
			continue
		}
		mark := len(in.arena)
		in.arena = append(in.arena, s[:i]...)
		for _, r := range s[i:] {
			in.arena = utf8.AppendRune(in.arena, f(r))
		}
		return stringValue(in.arenaString(mark))
	}
	return a
}

// substringFrom is SUBSTRING(s, start): valid when 0 <= start <= length,
// with a fractional start truncated, as IoT Hub does.
func substringFrom(in *Input, s, start value) value {
	if s.kind != kindString || start.kind != kindNumber {
		return undefinedValue
	}
	n := utf16Len(s.s)
	if !(start.n >= 0 && start.n <= float64(n)) {
		return undefinedValue
	}
	return stringValue(utf16Slice(in, s.s, int(start.n), n))
}

// substringFromFor is SUBSTRING(s, start, length): IoT Hub wants
// 0 <= start < length(s) — so an empty string never has a substring — and
// 0 <= length <= length(s) - start.
func substringFromFor(in *Input, s, start, count value) value {
	if s.kind != kindString || start.kind != kindNumber || count.kind != kindNumber {
		return undefinedValue
	}
	n := float64(utf16Len(s.s))
	if !(start.n >= 0 && start.n < n && count.n >= 0 && count.n <= n-start.n) {
		return undefinedValue
	}
	from := int(start.n)
	return stringValue(utf16Slice(in, s.s, from, from+int(count.n)))
}

// utf16Slice cuts s at UTF-16 unit indexes. Cutting through a surrogate
// pair leaves half a character, which .NET keeps as a lone surrogate and
// Go can only write as U+FFFD.
func utf16Slice(in *Input, s string, from, to int) string {
	if from >= to {
		return ""
	}
	a, splitA := utf16Offset(s, from)
	b, splitB := utf16Offset(s, to)
	if !splitA && !splitB {
		return s[a:b]
	}
	mark := len(in.arena)
	if splitA {
		in.arena = utf8.AppendRune(in.arena, utf8.RuneError)
		_, w := utf8.DecodeRuneInString(s[a:])
		a += w
	}
	if b > a {
		in.arena = append(in.arena, s[a:b]...)
	}
	if splitB {
		in.arena = utf8.AppendRune(in.arena, utf8.RuneError)
	}
	return in.arenaString(mark)
}

// indexOf is an ordinal, case-sensitive search returning a UTF-16 index,
// or -1.
func indexOf(_ *Input, s, sub value) value {
	if s.kind != kindString || sub.kind != kindString {
		return undefinedValue
	}
	i := strings.Index(s.s, sub.s)
	if i < 0 {
		return numberValue(-1)
	}
	return numberValue(float64(utf16Len(s.s[:i])))
}
