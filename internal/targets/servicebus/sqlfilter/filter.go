package sqlfilter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the type of a Value.
type Kind int

// Value kinds.
const (
	Null Kind = iota
	String
	Int
	Float
	Bool
)

// Value is a property value or literal.
type Value struct {
	Kind Kind
	S    string
	I    int64
	F    float64
	B    bool
}

// Str, Num and Boolean build values.
func Str(s string) Value      { return Value{Kind: String, S: s} }
func Num(i int64) Value       { return Value{Kind: Int, I: i} }
func Decimal(f float64) Value { return Value{Kind: Float, F: f} }
func Boolean(b bool) Value    { return Value{Kind: Bool, B: b} }

// Properties is what a filter reads of a message.
type Properties interface {
	// User returns an application (user) property.
	User(name string) (Value, bool)
	// System returns a system property by its Service Bus name (MessageId,
	// Label, CorrelationId, To, ReplyTo, SessionId, ContentType, ...),
	// matched case-insensitively.
	System(name string) (Value, bool)
}

// Filter is a parsed filter expression, safe for concurrent use.
type Filter struct {
	root node
	src  string
}

// String returns the expression as given.
func (f *Filter) String() string { return f.src }

// Match evaluates the filter: true only when the expression is True
// (Unknown, as for a missing property, does not match).
func (f *Filter) Match(p Properties) bool { return f.root.eval(p) == triTrue }

// Parse parses a SQL filter expression.
func Parse(expr string) (*Filter, error) {
	if len(expr) > MaxExpressionBytes {
		return nil, fmt.Errorf("the filter expression is %d bytes; at most %d are allowed", len(expr), MaxExpressionBytes)
	}
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("the filter expression is empty; use 1=1 to match every message")
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, fmt.Errorf("unexpected %s at position %d: the expression should end here", describe(t), t.pos)
	}
	return &Filter{root: n, src: expr}, nil
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}
func (p *parser) keyword(k string) bool {
	if t := p.peek(); t.kind == tokKeyword && t.text == k {
		p.i++
		return true
	}
	return false
}

func describe(t token) string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokString:
		return "string '" + t.text + "'"
	case tokKeyword:
		return "keyword " + t.text
	}
	return "'" + t.text + "'"
}

func (p *parser) or(depth int) (node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("the expression nests more than %d levels", maxDepth)
	}
	left, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		right, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		left = orNode{left, right}
	}
	return left, nil
}

func (p *parser) and(depth int) (node, error) {
	left, err := p.not(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("AND") {
		right, err := p.not(depth)
		if err != nil {
			return nil, err
		}
		left = andNode{left, right}
	}
	return left, nil
}

func (p *parser) not(depth int) (node, error) {
	if p.keyword("NOT") {
		if depth > maxDepth {
			return nil, fmt.Errorf("the expression nests more than %d levels", maxDepth)
		}
		n, err := p.not(depth + 1)
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	}
	return p.predicate(depth)
}

func (p *parser) predicate(depth int) (node, error) {
	t := p.peek()
	if t.kind == tokLParen {
		p.next()
		n, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tokRParen {
			return nil, fmt.Errorf("expected ')' at position %d, found %s", c.pos, describe(c))
		}
		return n, nil
	}
	if p.keyword("EXISTS") {
		paren := p.peek().kind == tokLParen
		if paren {
			p.next()
		}
		id := p.next()
		if id.kind != tokIdent {
			return nil, fmt.Errorf("EXISTS needs a property name at position %d, found %s", id.pos, describe(id))
		}
		if paren {
			if c := p.next(); c.kind != tokRParen {
				return nil, fmt.Errorf("expected ')' after EXISTS(%s at position %d", id.text, c.pos)
			}
		}
		return existsNode{ref(id.text)}, nil
	}
	left, err := p.operand()
	if err != nil {
		return nil, err
	}
	negate := p.keyword("NOT")
	switch {
	case p.keyword("IN"):
		if c := p.next(); c.kind != tokLParen {
			return nil, fmt.Errorf("IN needs a parenthesised list at position %d", c.pos)
		}
		var list []Value
		for {
			v, err := p.literal()
			if err != nil {
				return nil, fmt.Errorf("IN list: %w", err)
			}
			list = append(list, v)
			c := p.next()
			if c.kind == tokRParen {
				break
			}
			if c.kind != tokComma {
				return nil, fmt.Errorf("expected ',' or ')' in the IN list at position %d, found %s", c.pos, describe(c))
			}
		}
		return maybeNot(inNode{left, list}, negate), nil
	case p.keyword("LIKE"):
		pat := p.next()
		if pat.kind != tokString {
			return nil, fmt.Errorf("LIKE needs a string pattern at position %d, found %s", pat.pos, describe(pat))
		}
		var esc rune
		if p.keyword("ESCAPE") {
			e := p.next()
			if e.kind != tokString || len([]rune(e.text)) != 1 {
				return nil, fmt.Errorf("ESCAPE needs a one-character string at position %d", e.pos)
			}
			esc = []rune(e.text)[0]
		}
		return maybeNot(likeNode{left, []rune(pat.text), esc}, negate), nil
	case negate:
		t := p.peek()
		return nil, fmt.Errorf("NOT at this place must be followed by IN or LIKE (position %d, found %s)", t.pos, describe(t))
	case p.keyword("IS"):
		not := p.keyword("NOT")
		if !p.keyword("NULL") {
			t := p.peek()
			return nil, fmt.Errorf("IS must be followed by NULL or NOT NULL (position %d, found %s)", t.pos, describe(t))
		}
		return maybeNot(isNullNode{left}, not), nil
	}
	op := p.next()
	if op.kind != tokOp {
		if op.kind == tokEOF {
			return nil, fmt.Errorf("the expression ends after an operand; add a comparison such as = 'value' (arithmetic and bare values are not supported)")
		}
		return nil, fmt.Errorf("expected a comparison operator at position %d, found %s", op.pos, describe(op))
	}
	right, err := p.operand()
	if err != nil {
		return nil, err
	}
	return cmpNode{op.text, left, right}, nil
}

func maybeNot(n node, not bool) node {
	if not {
		return notNode{n}
	}
	return n
}

func (p *parser) operand() (operand, error) {
	t := p.peek()
	if t.kind == tokIdent {
		p.next()
		if strings.HasSuffix(t.text, "(") || (p.peek().kind == tokLParen) {
			return nil, fmt.Errorf("functions such as %s() are not supported (position %d)", t.text, t.pos)
		}
		return ref(t.text), nil
	}
	v, err := p.literal()
	if err != nil {
		return nil, err
	}
	return lit{v}, nil
}

func (p *parser) literal() (Value, error) {
	t := p.next()
	switch t.kind {
	case tokString:
		return Str(t.text), nil
	case tokNumber:
		if i, err := strconv.ParseInt(t.text, 10, 64); err == nil {
			return Num(i), nil
		}
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%q at position %d is not a number", t.text, t.pos)
		}
		return Decimal(f), nil
	case tokKeyword:
		switch t.text {
		case "TRUE":
			return Boolean(true), nil
		case "FALSE":
			return Boolean(false), nil
		case "NULL":
			return Value{}, nil
		}
	}
	return Value{}, fmt.Errorf("expected a value at position %d, found %s", t.pos, describe(t))
}

// ref resolves a reference's scope once, at parse time.
func ref(name string) propRef {
	lower := strings.ToLower(name)
	switch {
	case strings.HasPrefix(lower, "sys."):
		return propRef{name: name[4:], system: true}
	case strings.HasPrefix(lower, "user."):
		return propRef{name: name[5:]}
	}
	return propRef{name: name}
}
