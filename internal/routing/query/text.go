package query

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// arenaString returns in.arena[mark:] as a string without copying it.
//
// This is the one use of unsafe in the package, and it is sound because of
// two invariants: (1) bytes already handed out are never written again
// during the same Eval — the arena only grows, and when append moves it the
// old array stays alive for the strings that point into it; (2) no value
// outlives the Eval that made it — Eval returns a Result, never a value, and
// nothing caches values — so Condition.Eval may truncate the arena and
// reuse its bytes for the next evaluation. The same reasoning covers the
// strings jsonDoc.valueAt reads out of a parsed body or twin: they point
// into buffers that Reset and the next parse overwrite.
func (in *Input) arenaString(mark int) string {
	return bytesView(in.arena[mark:])
}

func bytesView(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// utf16Len is the length .NET reports for a string: UTF-16 code units, so
// characters beyond U+FFFF count twice.
func utf16Len(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			n++
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
		i += w
	}
	return n
}

// utf16Offset finds the byte offset of UTF-16 unit index unit in s. split
// reports that the index falls between the two halves of a surrogate pair;
// off is then the start of that character. An index past the end yields
// len(s).
func utf16Offset(s string, unit int) (off int, split bool) {
	n := 0
	for i := 0; i < len(s); {
		if n >= unit {
			return i, false
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if r >= 0x10000 {
			if n+1 == unit {
				return i, true
			}
			n += 2
		} else {
			n++
		}
		i += w
	}
	return len(s), false
}

// compareUTF16 orders strings as .NET's ordinal comparison does, by UTF-16
// code units. That differs from Go's byte order only when a character
// above U+FFFF meets one in U+E000..U+FFFF: its high surrogate sorts first.
func compareUTF16(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		return cmpOrdered(len(a), len(b))
	}
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ra, _ := utf8.DecodeRuneInString(a[i:])
	rb, _ := utf8.DecodeRuneInString(b[i:])
	if ka, kb := utf16Key(ra), utf16Key(rb); ka != kb {
		return cmpOrdered(int(ka), int(kb))
	}
	if ra != rb {
		return cmpOrdered(int(ra), int(rb))
	}
	return strings.Compare(a[i:], b[i:]) // invalid UTF-8 on both sides
}

// utf16Key is the first UTF-16 unit of r.
func utf16Key(r rune) rune {
	if r >= 0x10000 {
		return 0xD800 + (r-0x10000)>>10
	}
	return r
}

// dotNetWhite is the white space .NET's number parser skips.
func dotNetWhite(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// parseDotNetNumber is AS_NUMBER: .NET's double.TryParse with
// NumberStyles.Any and the invariant culture, which IoT Hub uses. Beyond
// plain decimals it accepts surrounding white space, a leading or trailing
// sign, parentheses for negative numbers, ',' group separators in the
// integer part, the invariant currency sign '¤', and Infinity/NaN. It
// validates first and hands strconv only plain decimal text, so a failure
// costs no allocation; the text is rebuilt in the arena only when group
// separators or other decoration must go.
func parseDotNetNumber(in *Input, s string) (float64, bool) {
	for len(s) > 0 && dotNetWhite(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && dotNetWhite(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if f, ok := parseSpecial(s); ok {
		return f, true
	}
	const currency = "¤"
	i := 0
	neg, signed, paren, closed, money, plain := false, false, false, false, false, true
leading:
	for i < len(s) {
		switch {
		case (s[i] == '+' || s[i] == '-') && !signed:
			signed, neg = true, s[i] == '-'
		case s[i] == '(' && !signed:
			signed, neg, paren, plain = true, true, true, false
		case strings.HasPrefix(s[i:], currency) && !money:
			money, plain = true, false
			i += len(currency) - 1
		default:
			break leading
		}
		i++
	}
	intStart, nDigits := i, 0
	for i < len(s) && (isDigit(s[i]) || (s[i] == ',' && nDigits > 0)) {
		if s[i] == ',' {
			plain = false
		} else {
			nDigits++
		}
		i++
	}
	intEnd, fracStart, fracEnd := i, i, i
	if i < len(s) && s[i] == '.' {
		i++
		fracStart = i
		for i < len(s) && isDigit(s[i]) {
			nDigits++
			i++
		}
		fracEnd = i
	}
	if nDigits == 0 {
		return 0, false
	}
	expStart := i
	i += exponent(s, i)
	end := i
	for i < len(s) {
		switch {
		case dotNetWhite(s[i]):
		case (s[i] == '+' || s[i] == '-') && !signed:
			signed, neg, plain = true, s[i] == '-', false
		case s[i] == ')' && paren && !closed:
			closed = true
		case strings.HasPrefix(s[i:], currency) && !money:
			money, plain = true, false
			i += len(currency) - 1
		default:
			return 0, false
		}
		i++
	}
	if paren != closed {
		return 0, false
	}
	if plain {
		return parseFloat(s[:end])
	}
	mark := len(in.arena)
	if neg {
		in.arena = append(in.arena, '-')
	}
	for j := intStart; j < intEnd; j++ {
		if s[j] != ',' {
			in.arena = append(in.arena, s[j])
		}
	}
	if fracEnd > fracStart {
		in.arena = append(in.arena, '.')
		in.arena = append(in.arena, s[fracStart:fracEnd]...)
	}
	in.arena = append(in.arena, s[expStart:end]...)
	f, ok := parseFloat(in.arenaString(mark))
	in.arena = in.arena[:mark] // strconv keeps no reference to its input
	return f, ok
}

// parseSpecial accepts .NET Core's invariant spellings of infinity,
// case-insensitively. NaN parses in .NET but is undefined here anyway.
func parseSpecial(s string) (float64, bool) {
	sign := 1.0
	t := s
	if strings.HasPrefix(t, "-") || strings.HasPrefix(t, "+") {
		if t[0] == '-' {
			sign = -1
		}
		t = t[1:]
	}
	switch {
	case strings.EqualFold(t, "infinity"), t == "∞":
		return math.Inf(int(sign)), true
	}
	return 0, false
}

// parseFloat parses validated decimal text; overflow is ±Inf, as in .NET
// Core 3.0 and later.
func parseFloat(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}
