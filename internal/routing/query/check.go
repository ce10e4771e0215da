package query

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// staticType is what the checker knows about an expression before any
// message arrives. IoT Hub types conditions statically: application and
// system properties are strings, literals have their own type, and only
// $body and $twin values are dynamic, i.e. any JSON type.
type staticType uint8

const (
	tyInvalid staticType = iota // an error was reported; suppresses follow-on errors
	tyString
	tyNumber
	tyBool
	tyNull
	tyUndefined
	tyDynamic
)

func (t staticType) String() string {
	return [...]string{"invalid", "string", "number", "bool", "null", "undefined", "dynamic"}[t]
}

// checker turns the syntax tree into the evaluation tree, enforcing IoT
// Hub's typing rules and collecting every type error.
type checker struct {
	errs     ErrorList
	usesBody bool
	usesTwin bool
}

func (c *checker) fail(n *node, msg, hint string) (expr, staticType) {
	c.errs = append(c.errs, errorAt(n.tok, msg, hint))
	return nil, tyInvalid
}

func (c *checker) check(n *node) (expr, staticType) {
	switch n.kind {
	case nodeLiteral:
		return literal(n.tok)
	case nodeProperty:
		return &appPropExpr{name: n.tok.text}, tyString
	case nodeSysProp:
		return c.sysProp(n)
	case nodeCall:
		return c.call(n)
	case nodeUnary:
		return c.unary(n)
	}
	return c.binary(n)
}

func literal(t token) (expr, staticType) {
	switch t.kind {
	case tokString:
		return &constExpr{stringValue(unquote(t.text))}, tyString
	case tokInt, tokHex, tokReal:
		if f, ok := parseNumber(t); ok {
			return &constExpr{value{kind: kindNumber, n: f}}, tyNumber
		}
		return &constExpr{undefinedValue}, tyUndefined
	case tokTrue, tokFalse:
		return &constExpr{boolValue(t.kind == tokTrue)}, tyBool
	case tokNull:
		return &constExpr{value{kind: kindNull}}, tyNull
	}
	return &constExpr{undefinedValue}, tyUndefined
}

// sysProp resolves $name: $body.<path> and $twin.<path> (prefixes in any
// case) query the body and the twin; other names are system properties.
func (c *checker) sysProp(n *node) (expr, staticType) {
	name := n.tok.text[1:]
	for _, doc := range [...]string{"body.", "twin."} {
		if len(name) < len(doc) || !strings.EqualFold(name[:len(doc)], doc) {
			continue
		}
		path, problem := parsePath(name[len(doc):])
		if problem != "" {
			return c.fail(n, fmt.Sprintf("Syntax error: invalid $%s path '%s'", doc[:4], name[len(doc):]), problem)
		}
		twin := doc == "twin."
		if twin {
			c.usesTwin = true
		} else {
			c.usesBody = true
		}
		return &docExpr{twin: twin, path: path}, tyDynamic
	}
	if strings.ContainsAny(name, "[]") {
		// "$body[0] = 'Feb' ... is not supported and will return undefined"
		// (IoT Hub routing query syntax): no property name has brackets.
		return &constExpr{undefinedValue}, tyDynamic
	}
	return &sysPropExpr{name: canonicalSystemName(name), appName: n.tok.text, fallback: !n.escaped}, tyString
}

// parsePath reads name('[' digits ']')?('.' name('[' digits ']')?)*, IoT
// Edge's JsonPath.g4. A name of digits alone lexes as a number there and is
// rejected; a huge index simply never matches.
func parsePath(p string) ([]pathSegment, string) {
	if p == "" {
		return nil, "the path is empty; name a property, as in $body.temperature"
	}
	parts := strings.Split(p, ".")
	segs := make([]pathSegment, 0, len(parts))
	for _, part := range parts {
		seg := pathSegment{index: -1}
		name := part
		if i := strings.IndexByte(part, '['); i >= 0 {
			inner, ok := strings.CutSuffix(part[i+1:], "]")
			if !ok || inner == "" || digits(inner, 0) != len(inner) {
				return nil, "an array index is a number in brackets after a property name, as in $body.readings[0]"
			}
			seg.index = math.MaxInt
			if v, err := strconv.Atoi(inner); err == nil {
				seg.index = v
			}
			name = part[:i]
		}
		switch {
		case name == "":
			return nil, "every step of a path needs a property name (an empty name, '..', or a leading index)"
		case strings.ContainsAny(name, "[]"):
			return nil, "brackets in a path enclose one array index after a name, as in $body.readings[0]"
		case digits(name, 0) == len(name):
			return nil, fmt.Sprintf("'%s' is a number, not a property name; index arrays as in $body.readings[%s]", name, name)
		}
		seg.name = []byte(name)
		segs = append(segs, seg)
	}
	return segs, ""
}

func (c *checker) call(n *node) (expr, staticType) {
	b, ok := builtins[strings.ToLower(n.tok.text)]
	if !ok {
		return c.fail(n, fmt.Sprintf("Invalid built-in function '%s'", n.tok.text), suggestFunction(n.tok.text))
	}
	args := make([]expr, len(n.args))
	types := make([]staticType, len(n.args))
	invalid := false
	for i, a := range n.args {
		args[i], types[i] = c.check(a)
		invalid = invalid || types[i] == tyInvalid
	}
	if invalid {
		return nil, tyInvalid
	}
	if !b.accepts(types) {
		names := make([]string, len(types))
		for i, t := range types {
			names[i] = t.String()
		}
		return c.fail(n, fmt.Sprintf("Invalid arguments to built-in function '%s': %s(%s)", n.tok.text, n.tok.text, strings.Join(names, ", ")),
			"expected "+b.signature+argumentHint(n.args, types))
	}
	switch {
	case b.name == "concat":
		return &concatExpr{args: args}, b.result
	case len(args) == 1:
		return &call1Expr{fn: b.fn1, a: args[0]}, b.result
	case len(args) == 2:
		return &call2Expr{fn: b.fn2, a: args[0], b: args[1]}, b.result
	}
	return &call3Expr{fn: b.fn3, a: args[0], b: args[1], c: args[2]}, b.result
}

func (c *checker) unary(n *node) (expr, staticType) {
	x, t := c.check(n.args[0])
	switch {
	case t == tyInvalid:
		return nil, tyInvalid
	case n.tok.kind == tokMinus && (t == tyNumber || t == tyDynamic):
		return &negExpr{x}, t
	case n.tok.kind == tokNot && (t == tyBool || t == tyDynamic):
		return &notExpr{x}, tyBool
	case n.tok.kind == tokNot && t == tyNull:
		return &constExpr{boolValue(true)}, tyBool // NOT null is true in IoT Hub
	}
	want := "number"
	if n.tok.kind == tokNot {
		want = "bool"
	}
	return c.fail(n, fmt.Sprintf("Invalid operands to unary operator '%s': have '%s', expected '%s'", n.tok.text, t, want),
		operandHint(n, []*node{n.args[0]}, []staticType{t}))
}

// comparable says whether two static types may meet in a comparison or
// ??: the same type, or a $body/$twin value against any type but the
// undefined literal.
func comparable(l, r staticType) bool {
	return l == r || (l == tyDynamic && r != tyUndefined) || (r == tyDynamic && l != tyUndefined)
}

func logical(t staticType) bool {
	return t == tyBool || t == tyNull || t == tyUndefined || t == tyDynamic
}

func (c *checker) binary(n *node) (expr, staticType) {
	l, lt := c.check(n.args[0])
	r, rt := c.check(n.args[1])
	if lt == tyInvalid || rt == tyInvalid {
		return nil, tyInvalid
	}
	op := n.tok.kind
	want := lt
	switch op {
	case tokPlus, tokMinus, tokStar, tokSlash, tokPercent:
		want = tyNumber
		if acceptNumber.has(lt) && acceptNumber.has(rt) {
			t := tyNumber
			if lt == tyDynamic || rt == tyDynamic {
				t = tyDynamic
			}
			return &arithExpr{op: op, l: l, r: r}, t
		}
	case tokConcat:
		want = tyString
		if acceptString.has(lt) && acceptString.has(rt) {
			args := []expr{l, r}
			if inner, ok := l.(*concatExpr); ok { // a || b || c is one concatenation
				args = append(inner.args[:len(inner.args):len(inner.args)], r)
			}
			return &concatExpr{args: args}, tyString
		}
	case tokEq, tokNe, tokLtGt, tokLt, tokLe, tokGt, tokGe:
		if comparable(lt, rt) {
			return &cmpExpr{op: op, l: l, r: r}, tyBool
		}
	case tokAnd, tokOr:
		want = tyBool
		if logical(lt) && logical(rt) {
			return logic(op, l, lt, r, rt)
		}
	case tokCoalesce:
		if comparable(lt, rt) {
			switch {
			case lt == tyUndefined:
				return r, rt
			case lt == rt:
				return &coalesceExpr{l, r}, lt
			}
			return &coalesceExpr{l, r}, tyDynamic
		}
	}
	return c.fail(n, fmt.Sprintf("Invalid operands to binary operator '%s': have '%s' and '%s', expected '%s' and '%s'",
		n.tok.text, lt, rt, want, want), operandHint(n, n.args, []staticType{lt, rt}))
}

// logic applies IoT Hub's rules for the null literal in AND and OR, which
// are not three-valued logic: null AND x is null (so false as a result),
// null OR x is x, null OR null is null. Everything else is Kleene logic.
func logic(op tokenKind, l expr, lt staticType, r expr, rt staticType) (expr, staticType) {
	null := &constExpr{value{kind: kindNull}}
	if op == tokAnd {
		if lt == tyNull || rt == tyNull {
			return null, tyNull
		}
		return &andExpr{l, r}, tyBool
	}
	switch {
	case lt == tyNull && rt == tyNull:
		return null, tyNull
	case lt == tyNull:
		return &logicExpr{r}, tyBool
	case rt == tyNull:
		return &logicExpr{l}, tyBool
	}
	return &orExpr{l, r}, tyBool
}

// operandHint explains the commonest type errors: property values are
// strings, a missing property is undefined rather than null, and
// || joins strings.
func operandHint(n *node, args []*node, types []staticType) string {
	var prop *node
	for i, a := range args {
		if types[i] == tyString && (a.kind == nodeProperty || a.kind == nodeSysProp) {
			prop = a
		}
	}
	has := func(t staticType) bool {
		for _, x := range types {
			if x == t {
				return true
			}
		}
		return false
	}
	switch op := n.tok.kind; {
	case op == tokConcat && has(tyBool):
		return "|| joins strings; use OR for logical or"
	case op == tokPlus && has(tyString) && !has(tyNumber):
		return "use || or CONCAT to join strings"
	case prop != nil && has(tyNumber):
		return fmt.Sprintf("property values are strings; convert with as_number(%s) to use it as a number", prop.tok.text)
	case prop != nil && has(tyBool):
		return fmt.Sprintf("property values are strings; compare with a string, as in %s = 'true'", prop.tok.text)
	case prop != nil && has(tyNull):
		return fmt.Sprintf("a missing property is undefined, not null; test with is_defined(%s)", prop.tok.text)
	case has(tyUndefined):
		return "the undefined literal only compares with itself; use is_defined() to test for a value"
	case has(tyNull):
		return "null only compares with null and with $body or $twin values; use is_defined() to test for a value"
	}
	return ""
}

func argumentHint(args []*node, types []staticType) string {
	for i, a := range args {
		if types[i] == tyString && (a.kind == nodeProperty || a.kind == nodeSysProp) {
			return fmt.Sprintf("; property values are strings, convert with as_number(%s) where a number is needed", a.tok.text)
		}
	}
	return ""
}
