package query

import (
	"strings"
	"unicode/utf8"
)

// tokenKind lists the tokens of IoT Hub's condition grammar (Azure/iotedge
// Routing.Core grammar/GrammarLexer.g4 and Condition.g4).
type tokenKind uint8

const (
	tokEOF tokenKind = iota
	tokLBrace
	tokRBrace
	tokReserved // SELECT, FROM, WHERE, INTO: route-statement keywords, never names
	tokString
	tokUnterminated
	tokInt
	tokHex
	tokReal
	tokTrue
	tokFalse
	tokNull
	tokUndefined
	tokLParen
	tokRParen
	tokComma
	tokPlus
	tokMinus
	tokStar
	tokSlash
	tokPercent
	tokAnd
	tokOr
	tokNot
	tokEq
	tokNe   // !=
	tokLtGt // <>
	tokLe
	tokGe
	tokGt
	tokLt
	tokConcat   // ||
	tokCoalesce // ??
	tokSysProp  // $name, $body.path, $twin.path
	tokIdent    // application property or function name
	tokQueryPath
	tokSpace
	tokComment
	tokUnknown
)

// token is one lexeme. For tokUnterminated, badEscape is the escape
// sequence that stopped the string (it starts at end), or "" when the
// string simply runs to the end of the condition.
type token struct {
	kind       tokenKind
	text       string
	start, end Position
	badEscape  string
}

// rule matches a token kind at the start of s and returns the number of
// bytes it covers, 0 for no match.
type rule struct {
	kind  tokenKind
	match func(s string) int
}

// rules is the lexer in grammar order. Like ANTLR, the lexer takes the
// longest match and, on a tie, the earliest rule. That is what makes the
// language's odd corners work the way IoT Hub's do: "x-1" is one property
// name (ID is longer than INTEGER), "3" is a number (INTEGER comes before
// ID), "true" is a keyword but "TRUE" a property name, and "'a'b" a property.
var rules = [...]rule{
	{tokLBrace, lit("{")},
	{tokRBrace, lit("}")},
	{tokReserved, keyword("select")},
	{tokReserved, keyword("from")},
	{tokReserved, keyword("where")},
	{tokReserved, keyword("into")},
	{tokString, matchString},
	{tokUnterminated, matchUnterminated},
	{tokInt, matchInt},
	{tokHex, matchHex},
	{tokReal, matchReal},
	{tokTrue, lit("true")},
	{tokFalse, lit("false")},
	{tokNull, lit("null")},
	{tokUndefined, lit("undefined")},
	{tokLParen, lit("(")},
	{tokRParen, lit(")")},
	{tokComma, lit(",")},
	{tokPlus, lit("+")},
	{tokMinus, lit("-")},
	{tokStar, lit("*")},
	{tokSlash, lit("/")},
	{tokPercent, lit("%")},
	{tokAnd, keyword("and")},
	{tokOr, keyword("or")},
	{tokNot, keyword("not")},
	{tokEq, lit("=")},
	{tokNe, lit("!=")},
	{tokLtGt, lit("<>")},
	{tokLe, lit("<=")},
	{tokGe, lit(">=")},
	{tokGt, lit(">")},
	{tokLt, lit("<")},
	{tokConcat, lit("||")},
	{tokCoalesce, lit("??")},
	{tokSysProp, matchSysProp},
	{tokIdent, matchRun(isIdentChar)},
	{tokQueryPath, matchRun(isPathChar)},
	{tokSpace, matchSpace},
	{tokUnknown, matchAny},
}

// lex splits a condition into tokens, dropping white space and comments.
// It never fails: characters no rule wants become tokUnknown, and the
// parser reports them where they stand.
func lex(src string) []token {
	var toks []token
	pos := Position{Line: 1, Column: 1}
	// COMMENT ('/*' .*? '*/') is matched here rather than in rules: nothing
	// else starts with "/*", and knowing where the last "*/" is keeps a
	// condition full of unclosed "/*" linear to lex.
	lastClose := strings.LastIndex(src, "*/")
	for off := 0; off < len(src); {
		rest := src[off:]
		best, bestLen := tokUnknown, 0
		if strings.HasPrefix(rest, "/*") && off+2 <= lastClose {
			best, bestLen = tokComment, 2+strings.Index(rest[2:], "*/")+2
		} else {
			for _, r := range rules {
				if n := r.match(rest); n > bestLen {
					best, bestLen = r.kind, n
				}
			}
		}
		text := rest[:bestLen]
		end := advance(pos, text)
		if best != tokSpace && best != tokComment {
			t := token{kind: best, text: text, start: pos, end: end}
			if best == tokUnterminated && bestLen < len(rest) {
				t.badEscape = invalidEscape(rest[bestLen:])
			}
			toks = append(toks, t)
		}
		pos = end
		off += bestLen
	}
	return append(toks, token{kind: tokEOF, start: pos, end: Position{pos.Line, pos.Column + 1}})
}

// advance moves a position over text; like ANTLR, only '\n' starts a line.
func advance(p Position, text string) Position {
	for _, r := range text {
		if r == '\n' {
			p.Line++
			p.Column = 1
		} else {
			p.Column++
		}
	}
	return p
}

func lit(want string) func(string) int {
	return func(s string) int {
		if strings.HasPrefix(s, want) {
			return len(want)
		}
		return 0
	}
}

// keyword matches an ASCII word case-insensitively (AND, Or, not, ...).
func keyword(word string) func(string) int {
	return func(s string) int {
		if len(s) >= len(word) && strings.EqualFold(s[:len(word)], word) {
			return len(word)
		}
		return 0
	}
}

// isIdentChar is GrammarLexer.g4's ID_CHARS: anything but the separators
// ()<>@,;:\"/[]?={} and space, tab, CR, LF. So '.', '-', '$', '!', '*',
// '+', '%', '|' and '\” all continue a property name.
func isIdentChar(r rune) bool {
	return isPathChar(r) && r != '[' && r != ']'
}

// isPathChar is QUERY_PATH_CHARS: ID_CHARS plus '[' and ']'.
func isPathChar(r rune) bool {
	switch r {
	case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '?', '=', '{', '}', ' ', '\t', '\n', '\r':
		return false
	}
	return true
}

func matchRun(ok func(rune) bool) func(string) int {
	return func(s string) int {
		n := 0
		for n < len(s) {
			r, w := utf8.DecodeRuneInString(s[n:])
			if !ok(r) {
				break
			}
			n += w
		}
		return n
	}
}

func matchSysProp(s string) int {
	if !strings.HasPrefix(s, "$") {
		return 0
	}
	if n := matchRun(isPathChar)(s[1:]); n > 0 {
		return 1 + n
	}
	return 0
}

func matchSpace(s string) int {
	n := 0
	for n < len(s) && (s[n] == ' ' || s[n] == '\t' || s[n] == '\r' || s[n] == '\n') {
		n++
	}
	return n
}

func matchAny(s string) int {
	_, w := utf8.DecodeRuneInString(s)
	return w
}

// scanString walks a quoted string. closed is the length including the
// closing quote (0 if there is none); open is how far the unterminated
// form reaches: to the end of input, or to an escape the grammar does not
// allow. Only \' \" \\ and \uXXXX are escapes.
func scanString(s string) (closed, open int) {
	if s == "" || (s[0] != '\'' && s[0] != '"') {
		return 0, 0
	}
	quote := s[0]
	i := 1
	for i < len(s) {
		switch c := s[i]; {
		case c == quote:
			return i + 1, i
		case c == '\\':
			n := escapeLen(s[i:])
			if n == 0 {
				return 0, i
			}
			i += n
		default:
			i++
		}
	}
	return 0, i
}

// escapeLen is the length of the valid escape at the start of s, or 0.
func escapeLen(s string) int {
	if len(s) < 2 {
		return 0
	}
	switch s[1] {
	case '\'', '"', '\\':
		return 2
	case 'u':
		if len(s) >= 6 && isHex(s[2]) && isHex(s[3]) && isHex(s[4]) && isHex(s[5]) {
			return 6
		}
	}
	return 0
}

func matchString(s string) int {
	closed, _ := scanString(s)
	return closed
}

func matchUnterminated(s string) int {
	_, open := scanString(s)
	return open
}

// invalidEscape returns the backslash sequence at the start of s (which
// stopped a string), so the error can name it instead of saying the string
// never ends.
func invalidEscape(s string) string {
	if len(s) < 2 {
		return s
	}
	_, w := utf8.DecodeRuneInString(s[1:])
	return s[:1+w]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func digits(s string, i int) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	return j - i
}

// matchInt is INTEGER_LITERAL: '-'? [0-9]+.
func matchInt(s string) int {
	i := 0
	if strings.HasPrefix(s, "-") {
		i = 1
	}
	if n := digits(s, i); n > 0 {
		return i + n
	}
	return 0
}

// matchHex is HEX_INTEGER_LITERAL: '0' [xX] HEX_DIGIT+.
func matchHex(s string) int {
	if len(s) < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return 0
	}
	i := 2
	for i < len(s) && isHex(s[i]) {
		i++
	}
	if i == 2 {
		return 0
	}
	return i
}

// matchReal is REAL_LITERAL: '-'? [0-9]* '.' [0-9]+ EXP? | '-'? [0-9]* EXP.
// Note the second form accepts "e5" with no mantissa; it lexes as a number
// that fails to parse, i.e. the undefined literal, as in IoT Hub.
func matchReal(s string) int {
	i := 0
	if strings.HasPrefix(s, "-") {
		i = 1
	}
	i += digits(s, i)
	best := 0
	if i < len(s) && s[i] == '.' {
		if f := digits(s, i+1); f > 0 {
			j := i + 1 + f
			best = j + exponent(s, j)
		}
	}
	if e := exponent(s, i); e > 0 && i+e > best {
		best = i + e
	}
	return best
}

// exponent is the length of EXP ([eE] [+-]? [0-9]+) at s[i:], or 0.
func exponent(s string, i int) int {
	if i >= len(s) || (s[i] != 'e' && s[i] != 'E') {
		return 0
	}
	j := i + 1
	if j < len(s) && (s[j] == '+' || s[j] == '-') {
		j++
	}
	if n := digits(s, j); n > 0 {
		return j + n - i
	}
	return 0
}
