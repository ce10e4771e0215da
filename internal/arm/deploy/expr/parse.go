package expr

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/outpost-iot/outpost/internal/textdist"
)

// MaxExpressionLength is ARM's limit on one expression string.
const MaxExpressionLength = 24576

// maxNesting bounds call and accessor nesting so a hostile template can't
// exhaust the stack; real templates nest a few levels.
const maxNesting = 200

// IsExpression reports whether a template string is a language expression:
// it starts with '[' and ends with ']' and doesn't start with "[[" (the
// escape for a literal that looks like an expression).
func IsExpression(s string) bool {
	return len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' && s[1] != '['
}

// Unescape returns the literal a non-expression template string stands
// for: "[[x]" is "[x]"; anything else is itself.
func Unescape(s string) string {
	if len(s) >= 2 && s[0] == '[' && s[1] == '[' && s[len(s)-1] == ']' {
		return s[1:]
	}
	return s
}

// ParseError is a syntax error in an expression.
type ParseError struct {
	// Expression is the template string that failed, brackets included.
	Expression string
	// Pos is the 0-based character offset of the problem in Expression.
	Pos int
	Msg string
}

func (e *ParseError) Error() string {
	shown := e.Expression
	if utf8.RuneCountInString(shown) > 160 {
		shown = string([]rune(shown)[:157]) + "..."
	}
	return fmt.Sprintf("The language expression '%s' is not valid: position %d: %s", shown, e.Pos, e.Msg)
}

// Parse parses a template string. An expression ("[concat('a', 'b')]")
// becomes its syntax tree; any other string, including an escaped "[[…]",
// becomes a *StringLit holding the literal it stands for, so callers can
// evaluate every template string the same way.
//
// Function names are checked against the library (case-insensitively), as
// are argument counts, so a typo fails here, with its position, rather than
// in the middle of a deployment. Names containing a dot are user-defined
// functions and names starting with "list" are resource list actions; both
// are resolved when evaluated.
func Parse(s string) (Expr, error) {
	if !IsExpression(s) {
		return &StringLit{Value: Unescape(s)}, nil
	}
	if n := utf8.RuneCountInString(s); n > MaxExpressionLength {
		return nil, &ParseError{Expression: s, Pos: MaxExpressionLength,
			Msg: fmt.Sprintf("the expression is %d characters long; ARM allows at most %d", n, MaxExpressionLength)}
	}
	p := &parser{src: s, pos: 1, end: len(s) - 1}
	p.next()
	if p.err != nil {
		return nil, p.err
	}
	if p.tok.kind == tokEOF {
		return nil, p.errAt(0, "the expression is empty; write a function call such as [parameters('name')], or \"[[]\" for the literal text []")
	}
	e := p.parseExpr(0)
	if p.err == nil && p.tok.kind != tokEOF {
		p.fail(p.tok.pos, fmt.Sprintf("unexpected %s after the end of the expression; is a ',' or a ')' missing?", p.tok.describe()))
	}
	if p.err != nil {
		return nil, p.err
	}
	return e, nil
}

// MustParse is Parse for expressions known to be valid, such as constants
// in code; it panics on error.
func MustParse(s string) Expr {
	e, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return e
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokInt
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
	tokComma
	tokDot
)

type token struct {
	kind tokKind
	pos  int // byte offset in src
	text string
	str  string // decoded string literal
	num  int64
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokIdent:
		return fmt.Sprintf("name '%s'", t.text)
	case tokString:
		return fmt.Sprintf("string '%s'", t.text)
	case tokInt:
		return fmt.Sprintf("number %s", t.text)
	}
	return fmt.Sprintf("'%s'", t.text)
}

type parser struct {
	src      string
	pos, end int // byte offsets; end is the closing ']'
	tok      token
	err      *ParseError
}

// errAt builds an error at a byte offset, reported as a character offset.
func (p *parser) errAt(byteOff int, msg string) *ParseError {
	return &ParseError{Expression: p.src, Pos: utf8.RuneCountInString(p.src[:byteOff]), Msg: msg}
}

func (p *parser) fail(byteOff int, msg string) {
	if p.err == nil {
		p.err = p.errAt(byteOff, msg)
	}
	p.tok = token{kind: tokEOF, pos: p.end}
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '$'
}

func isIdentPart(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9'
}

func (p *parser) next() {
	if p.err != nil {
		return
	}
	for p.pos < p.end && strings.IndexByte(" \t\r\n", p.src[p.pos]) >= 0 {
		p.pos++
	}
	start := p.pos
	if p.pos >= p.end {
		p.tok = token{kind: tokEOF, pos: p.end}
		return
	}
	c := p.src[p.pos]
	if k := punctuation(c); k != tokEOF {
		p.pos++
		p.tok = token{kind: k, pos: start, text: p.src[start:p.pos]}
		return
	}
	switch {
	case c == '\'':
		p.lexString()
	case c >= '0' && c <= '9' || c == '-':
		p.lexNumber()
	case isIdentStart(c):
		for p.pos < p.end && isIdentPart(p.src[p.pos]) {
			p.pos++
		}
		p.tok = token{kind: tokIdent, pos: start, text: p.src[start:p.pos]}
	case c == '"':
		p.fail(start, "strings in expressions use single quotes: write 'text', not \"text\"")
	default:
		r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
		p.fail(start, fmt.Sprintf("the character '%c' is not expected here", r))
	}
}

func punctuation(c byte) tokKind {
	switch c {
	case '(':
		return tokLParen
	case ')':
		return tokRParen
	case '[':
		return tokLBracket
	case ']':
		return tokRBracket
	case ',':
		return tokComma
	case '.':
		return tokDot
	}
	return tokEOF
}

func (p *parser) lexString() {
	start := p.pos
	p.pos++
	var b strings.Builder
	for {
		if p.pos >= p.end {
			p.fail(start, "the string starting here has no closing quote; a quote inside a string is written twice ('it''s')")
			return
		}
		c := p.src[p.pos]
		if c == '\'' {
			if p.pos+1 < p.end && p.src[p.pos+1] == '\'' {
				b.WriteByte('\'')
				p.pos += 2
				continue
			}
			p.pos++
			break
		}
		b.WriteByte(c)
		p.pos++
	}
	p.tok = token{kind: tokString, pos: start, text: p.src[start+1 : p.pos-1], str: b.String()}
}

func (p *parser) lexNumber() {
	start := p.pos
	if p.src[p.pos] == '-' {
		p.pos++
	}
	digits := p.pos
	for p.pos < p.end && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
		p.pos++
	}
	if p.pos == digits {
		p.fail(start, fmt.Sprintf("'%c' must be followed by digits; subtraction is sub(a, b)", p.src[start]))
		return
	}
	text := p.src[start:p.pos]
	if p.pos < p.end && (p.src[p.pos] == '.' && p.pos+1 < p.end && p.src[p.pos+1] >= '0' && p.src[p.pos+1] <= '9' || p.src[p.pos] == 'e' || p.src[p.pos] == 'E') {
		p.fail(start, "expressions only have integer literals; write a fractional number as json('1.5')")
		return
	}
	if p.pos < p.end && isIdentStart(p.src[p.pos]) {
		p.fail(p.pos, fmt.Sprintf("the number %s runs into a name; is a ',' missing?", text))
		return
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		p.fail(start, fmt.Sprintf("the number %s doesn't fit in a 64-bit integer", text))
		return
	}
	p.tok = token{kind: tokInt, pos: start, text: text, num: n}
}

func (p *parser) expect(k tokKind, what string) bool {
	if p.tok.kind != k {
		p.fail(p.tok.pos, fmt.Sprintf("expected %s, found %s", what, p.tok.describe()))
		return false
	}
	p.next()
	return true
}

func (p *parser) parseExpr(depth int) Expr {
	if depth > maxNesting {
		p.fail(p.tok.pos, fmt.Sprintf("the expression nests more than %d levels deep", maxNesting))
		return nil
	}
	var e Expr
	t := p.tok
	switch t.kind {
	case tokString:
		e = &StringLit{Value: t.str, pos: p.charPos(t.pos)}
		p.next()
	case tokInt:
		e = &IntLit{Value: t.num, pos: p.charPos(t.pos)}
		p.next()
	case tokIdent:
		e = p.parseCall(depth)
	case tokEOF:
		p.fail(t.pos, "expected a value (a function call, a 'string' or a number), found the end of the expression")
		return nil
	default:
		p.fail(t.pos, fmt.Sprintf("expected a value (a function call, a 'string' or a number), found %s", t.describe()))
		return nil
	}
	for p.err == nil {
		switch p.tok.kind {
		case tokDot:
			dot := p.tok.pos
			p.next()
			if p.tok.kind != tokIdent {
				p.fail(p.tok.pos, fmt.Sprintf("expected a property name after '.', found %s; use ['name'] for names that aren't identifiers", p.tok.describe()))
				return nil
			}
			e = &Member{Target: e, Name: p.tok.text, pos: p.charPos(dot)}
			p.next()
		case tokLBracket:
			open := p.tok.pos
			p.next()
			idx := p.parseExpr(depth + 1)
			if !p.expect(tokRBracket, "']' to close the index") {
				return nil
			}
			e = &Index{Target: e, Index: idx, pos: p.charPos(open)}
		default:
			return e
		}
		depth++
		if depth > maxNesting {
			p.fail(p.tok.pos, fmt.Sprintf("the expression nests more than %d levels deep", maxNesting))
			return nil
		}
	}
	return e
}

func (p *parser) charPos(byteOff int) int {
	return utf8.RuneCountInString(p.src[:byteOff])
}

func (p *parser) parseCall(depth int) Expr {
	start := p.tok
	name := start.text
	p.next()
	// A dotted name followed by '(' is a user-defined function
	// (namespace.member); without '(' the dot is property access, which
	// only applies to a call's result, so it is an error either way.
	for p.tok.kind == tokDot && p.err == nil {
		save := *p
		p.next()
		if p.tok.kind != tokIdent {
			*p = save
			break
		}
		name += "." + p.tok.text
		p.next()
	}
	if p.tok.kind != tokLParen {
		switch strings.ToLower(name) {
		case "true", "false", "null":
			p.fail(start.pos, fmt.Sprintf("'%s' is not a literal in ARM expressions; call %s() instead", name, strings.ToLower(name)))
		default:
			p.fail(start.pos, fmt.Sprintf("'%s' must be a function call such as %s(...); a string is written in single quotes ('%s')", name, name, name))
		}
		return nil
	}
	open := p.tok.pos
	p.next()
	c := &Call{Name: name, pos: p.charPos(start.pos)}
	if p.tok.kind != tokRParen {
		for p.err == nil {
			arg := p.parseExpr(depth + 1)
			if p.err != nil {
				return nil
			}
			c.Args = append(c.Args, arg)
			if p.tok.kind == tokComma {
				p.next()
				continue
			}
			if p.tok.kind != tokRParen {
				if p.tok.kind == tokEOF {
					p.fail(open, fmt.Sprintf("the call to '%s' has no closing ')'", name))
				} else {
					msg := fmt.Sprintf("expected ',' or ')' in the arguments of '%s', found %s", name, p.tok.describe())
					if p.src[p.tok.pos-1] == '\'' {
						msg += "; a quote inside a string is written twice ('it''s')"
					}
					p.fail(p.tok.pos, msg)
				}
				return nil
			}
			break
		}
	}
	if !p.expect(tokRParen, "')'") {
		return nil
	}
	if msg := p.resolve(c); msg != "" {
		p.fail(start.pos, msg)
		return nil
	}
	return c
}

// resolve binds a call to the function library and checks its arguments.
func (p *parser) resolve(c *Call) string {
	if strings.Contains(c.Name, ".") {
		return "" // user-defined: namespace.member
	}
	fn := lookupFunction(c.Name)
	if fn == nil {
		if len(c.Name) >= 4 && strings.EqualFold(c.Name[:4], "list") {
			fn = listFunction
		} else {
			msg := fmt.Sprintf("the template function '%s' is not valid", c.Name)
			if s := suggestFunction(c.Name); s != "" {
				msg += fmt.Sprintf("; did you mean '%s'?", s)
			}
			return msg
		}
	}
	c.fn = fn
	n := len(c.Args)
	if n < fn.minArgs || fn.maxArgs >= 0 && n > fn.maxArgs {
		name := fn.name
		if fn == listFunction {
			name = c.Name
		}
		return fmt.Sprintf("the function '%s' takes %s, but %d %s given", name, fn.arity(), n, plural(n, "was", "were"))
	}
	for i, a := range c.Args {
		if l, ok := a.(*Call); ok && l.fn != nil && l.fn.isLambda && !fn.takesLambda(i) {
			return fmt.Sprintf("'lambda' can only be an argument of filter, map, reduce, sort, toObject, mapValues or groupBy, not argument %d of '%s'", i+1, fn.name)
		}
	}
	if fn.isLambda {
		for i, a := range c.Args[:n-1] {
			if _, ok := a.(*StringLit); !ok {
				return fmt.Sprintf("argument %d of 'lambda' must be a variable name in quotes, such as 'item'", i+1)
			}
		}
	}
	for _, i := range fn.lambdaArgs {
		if i < n {
			if l, ok := c.Args[i].(*Call); !ok || l.fn == nil || !l.fn.isLambda {
				return fmt.Sprintf("argument %d of '%s' must be a lambda(...) expression", i+1, fn.name)
			}
		}
	}
	return ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// suggestFunction proposes the library function closest to a misspelled
// name (Levenshtein distance, ignoring case), if one is close enough to be
// a typo.
func suggestFunction(name string) string {
	lower := strings.ToLower(name)
	best, bestDist := "", 3
	if len(lower) <= 4 {
		bestDist = 2
	}
	for _, fn := range functionList {
		if d := textdist.Levenshtein(lower, strings.ToLower(fn.name)); d < bestDist {
			best, bestDist = fn.name, d
		}
	}
	return best
}
