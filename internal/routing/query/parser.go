package query

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// nodeKind is the shape of a syntax-tree node.
type nodeKind uint8

const (
	nodeLiteral  nodeKind = iota // tok is the literal
	nodeProperty                 // tok is an application property name
	nodeSysProp                  // tok is a $name; escaped when written {$name}
	nodeCall                     // tok is the function name, args the arguments
	nodeUnary                    // tok is '-' or NOT, args[0] the operand
	nodeBinary                   // tok is the operator, args the operands
)

// node is the untyped syntax tree the parser produces and the checker
// turns into an evaluable, typed tree.
type node struct {
	kind    nodeKind
	tok     token
	escaped bool
	args    []*node
	height  int
}

// maxHeight bounds the syntax tree so that a hostile condition cannot make
// the checker or the evaluator recurse without end. Real conditions are a
// handful of levels deep; a chain of OR-ed comparisons is as high as it is
// long, so the bound leaves room for long chains.
const maxHeight = 1000

// binaryPrecedence follows Condition.g4's alternative order, lowest first:
// ??, OR, AND, equality, comparison, additive and ||, multiplicative.
// Unary '-' and NOT bind tighter than all of them, so NOT a = b is
// (NOT a) = b, as in IoT Hub.
func binaryPrecedence(k tokenKind) int {
	switch k {
	case tokCoalesce:
		return 1
	case tokOr:
		return 2
	case tokAnd:
		return 3
	case tokEq, tokNe, tokLtGt:
		return 4
	case tokLt, tokLe, tokGt, tokGe:
		return 5
	case tokPlus, tokMinus, tokConcat:
		return 6
	case tokStar, tokSlash, tokPercent:
		return 7
	}
	return 0
}

type parser struct {
	toks  []token
	pos   int
	depth int // recursion depth, bounded before any node exists: "((((((..."
}

// parse builds the syntax tree of a condition, or returns the first syntax
// error. An empty condition yields a nil tree.
func parse(src string) (*node, *Error) {
	p := &parser{toks: lex(src)}
	if p.peek().kind == tokEOF {
		return nil, nil
	}
	n, err := p.binary(1)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		// IoT Edge's ANTLR parser silently ignores what follows a complete
		// expression ("a = 'x' b = 'y'" routes on a alone). That hides
		// mistakes, so here it is an error.
		return nil, p.trailing(t)
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) binary(minPrec int) (*node, *Error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op := p.peek()
		prec := binaryPrecedence(op.kind)
		if prec == 0 || prec < minPrec {
			return left, nil
		}
		p.next()
		right, err := p.binary(prec + 1)
		if err != nil {
			return nil, err
		}
		if left, err = newNode(nodeBinary, op, left, right); err != nil {
			return nil, err
		}
	}
}

func (p *parser) unary() (*node, *Error) {
	t := p.peek()
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxHeight {
		return nil, errorAt(t, "Syntax error: condition is nested too deeply",
			fmt.Sprintf("a condition may nest at most %d operators and parentheses", maxHeight))
	}
	if t.kind != tokMinus && t.kind != tokNot {
		return p.primary()
	}
	p.next()
	operand, err := p.unary()
	if err != nil {
		return nil, err
	}
	return newNode(nodeUnary, t, operand)
}

func newNode(kind nodeKind, t token, args ...*node) (*node, *Error) {
	n := &node{kind: kind, tok: t, args: args, height: 1}
	for _, a := range args {
		n.height = max(n.height, a.height+1)
	}
	if n.height > maxHeight {
		return nil, errorAt(t, "Syntax error: condition is nested too deeply",
			fmt.Sprintf("a condition may nest at most %d operators and parentheses", maxHeight))
	}
	return n, nil
}

func (p *parser) primary() (*node, *Error) {
	t := p.next()
	switch t.kind {
	case tokString, tokInt, tokHex, tokReal, tokTrue, tokFalse, tokNull, tokUndefined:
		return newNode(nodeLiteral, t)
	case tokSysProp:
		return newNode(nodeSysProp, t)
	case tokIdent:
		if p.peek().kind == tokLParen {
			return p.call(t)
		}
		return newNode(nodeProperty, t)
	case tokLParen:
		inner, err := p.binary(1)
		if err != nil {
			return nil, err
		}
		switch c := p.peek(); c.kind {
		case tokRParen:
			p.next()
			return inner, nil
		case tokEOF:
			return nil, errorAt(t, "Syntax error: missing closing ')'", "")
		default:
			if hint := operatorHint(c); hint != "" {
				return nil, errorAt(c, fmt.Sprintf("Syntax error: unexpected '%s'", c.text), hint)
			}
			return nil, errorAt(c, "Syntax error: missing closing ')'",
				fmt.Sprintf("found %s where ')' or an operator was expected", describe(c)))
		}
	case tokLBrace:
		prop := p.next()
		if prop.kind != tokSysProp {
			return nil, errorAt(prop, fmt.Sprintf("Syntax error: unexpected %s after '{'", describe(prop)),
				"braces escape a system property, as in {$contentType}")
		}
		if c := p.next(); c.kind != tokRBrace {
			return nil, errorAt(c, fmt.Sprintf("Syntax error: unexpected %s", describe(c)),
				"close the escaped system property with '}'")
		}
		n, err := newNode(nodeSysProp, prop)
		if n != nil {
			n.escaped = true
		}
		return n, err
	}
	return nil, p.unexpected(t)
}

func (p *parser) call(name token) (*node, *Error) {
	open := p.next()
	var args []*node
	if p.peek().kind == tokRParen {
		p.next()
		return newNode(nodeCall, name)
	}
	for {
		arg, err := p.binary(1)
		if err != nil {
			return nil, err
		}
		args = append(args, arg)
		switch c := p.next(); c.kind {
		case tokComma:
			continue
		case tokRParen:
			return newNode(nodeCall, name, args...)
		case tokEOF:
			return nil, errorAt(open, "Syntax error: missing closing ')'",
				fmt.Sprintf("the argument list of %s is not closed", name.text))
		default:
			hint := operatorHint(c)
			if hint == "" {
				hint = fmt.Sprintf("expected ',' or ')' in the argument list of %s", name.text)
			}
			return nil, errorAt(c, fmt.Sprintf("Syntax error: unexpected %s", describe(c)), hint)
		}
	}
}

// unexpected explains a token found where an operand should be.
func (p *parser) unexpected(t token) *Error {
	switch t.kind {
	case tokEOF:
		return errorAt(t, "Syntax error: unexpected end of condition", "an operand is missing")
	case tokUnknown:
		return errorAt(t, fmt.Sprintf("Syntax error: invalid symbol '%s'", t.text), symbolHint(t.text))
	case tokUnterminated:
		if t.badEscape != "" {
			at := Position{t.end.Line, t.end.Column}
			return &Error{Start: at, End: advance(at, t.badEscape),
				Msg:  fmt.Sprintf("Syntax error: invalid escape sequence '%s' in string", t.badEscape),
				Hint: `the only escapes are \', \", \\ and \uXXXX`}
		}
		return errorAt(t, "Syntax error: unterminated string", "close the string with "+t.text[:1])
	case tokRParen:
		return errorAt(t, "Syntax error: unmatched closing ')'", "")
	case tokReserved:
		return errorAt(t, fmt.Sprintf("Syntax error: '%s' is a reserved word", t.text),
			"SELECT, FROM, WHERE and INTO cannot be used as property names in a route condition")
	case tokQueryPath:
		return errorAt(t, fmt.Sprintf("Syntax error: unexpected '%s'", t.text),
			"'[' and ']' may only index arrays in $body and $twin paths")
	case tokEq:
		if p.pos >= 2 && p.toks[p.pos-2].kind == tokEq && p.toks[p.pos-2].end == t.start {
			return errorAt(t, "Syntax error: unexpected '='", "equality is a single '=' (there is no '==')")
		}
	}
	return errorAt(t, fmt.Sprintf("Syntax error: unexpected %s", describe(t)), "expected an operand")
}

// trailing explains a token that follows a complete condition.
func (p *parser) trailing(t token) *Error {
	switch t.kind {
	case tokRParen:
		return errorAt(t, "Syntax error: unmatched closing ')'", "")
	case tokUnknown, tokUnterminated, tokReserved, tokQueryPath:
		return p.unexpected(t)
	}
	if hint := operatorHint(t); hint != "" {
		return errorAt(t, fmt.Sprintf("Syntax error: unexpected '%s'", t.text), hint)
	}
	hint := "join conditions with AND or OR"
	if strings.HasPrefix(t.text, "-") {
		hint = "to subtract, put spaces around '-': '-1' is a negative number and 'x-1' a property name"
	}
	return errorAt(t, fmt.Sprintf("Syntax error: unexpected %s after a complete condition", describe(t)), hint)
}

// operatorHint answers operators from other languages, which lex as
// property names here because '&', '|' and '!' are name characters.
func operatorHint(t token) string {
	if t.kind != tokIdent {
		return ""
	}
	switch t.text {
	case "&&", "&":
		return "use AND"
	case "|":
		return "use OR"
	case "!":
		return "use NOT"
	}
	return ""
}

func symbolHint(sym string) string {
	switch sym {
	case "?":
		return "'??' is the only operator with '?'"
	case ":", ";", "@", "\\":
		return "property names with this character cannot be referenced in a route condition"
	}
	return ""
}

func describe(t token) string {
	switch t.kind {
	case tokEOF:
		return "end of condition"
	case tokString, tokUnterminated:
		return "string " + t.text
	}
	return "'" + t.text + "'"
}

// unquote decodes a string literal; the lexer has already checked its
// escapes. \uXXXX escapes are UTF-16 units, so a surrogate pair written as
// two escapes becomes one character, and a lone surrogate U+FFFD.
func unquote(lit string) string {
	body := lit[1 : len(lit)-1]
	if !strings.Contains(body, `\`) {
		return body
	}
	var b strings.Builder
	var units []uint16
	flush := func() {
		for _, r := range utf16.Decode(units) {
			b.WriteRune(r)
		}
		units = units[:0]
	}
	for i := 0; i < len(body); {
		if body[i] == '\\' && body[i+1] == 'u' {
			u, _ := strconv.ParseUint(body[i+2:i+6], 16, 16)
			units = append(units, uint16(u))
			i += 6
			continue
		}
		flush()
		if body[i] == '\\' {
			b.WriteByte(body[i+1])
			i += 2
			continue
		}
		_, w := utf8.DecodeRuneInString(body[i:])
		b.WriteString(body[i : i+w])
		i += w
	}
	flush()
	return b.String()
}

// parseNumber converts a numeric literal. Like IoT Hub, a literal that
// lexes as a number but does not parse as one ("e5") is undefined, and one
// that overflows is infinite. Hexadecimal literals are 64-bit two's
// complement integers (0xFFFFFFFFFFFFFFFF is -1).
func parseNumber(t token) (float64, bool) {
	if t.kind == tokHex {
		h := t.text[2:]
		if len(h) > 16 {
			return 0, false
		}
		u, err := strconv.ParseUint(h, 16, 64)
		return float64(int64(u)), err == nil
	}
	f, err := strconv.ParseFloat(t.text, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}
