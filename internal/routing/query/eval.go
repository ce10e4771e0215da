package query

import "math"

// Result is the outcome of a condition: a route matches only on True.
// Undefined covers everything that is not a Boolean, such as a missing
// property, a comparison with a missing property or a condition that is a
// bare number; IoT Hub logs those as routing errors and does not route.
type Result uint8

const (
	Undefined Result = iota
	False
	True
)

// String returns "undefined", "false" or "true", the words the route test
// API ($testnew) uses.
func (r Result) String() string {
	switch r {
	case True:
		return "true"
	case False:
		return "false"
	}
	return "undefined"
}

// kind is a run-time value type. The order of bool, number, string and
// null is the order IoT Hub uses to compare values of different JSON types
// (Routing.Core QueryValueType): false < true < numbers < strings < null.
type kind uint8

const (
	kindUndefined kind = iota
	kindBool
	kindNumber
	kindString
	kindNull
	kindObject // only from $body and $twin; never compared, only tested
	kindArray
)

// value is a run-time value. It is passed by value and never escapes an
// evaluation, which is what lets strings in it point into buffers the
// Input reuses (see arena.go).
type value struct {
	kind kind
	b    bool
	n    float64
	s    string
}

var undefinedValue = value{}

func boolValue(b bool) value { return value{kind: kindBool, b: b} }

func stringValue(s string) value { return value{kind: kindString, s: s} }

// numberValue turns NaN into undefined: IoT Hub represents undefined
// numbers as NaN, so 3 % 0 and sqrt(-1) are undefined while 3/0 is +Inf.
func numberValue(f float64) value {
	if math.IsNaN(f) {
		return undefinedValue
	}
	return value{kind: kindNumber, n: f}
}

// truth reads a value as a three-valued Boolean: anything but a Boolean is
// unknown.
func truth(v value) (b, known bool) {
	return v.b, v.kind == kindBool
}

// expr is a node of the typed evaluation tree.
type expr interface {
	eval(in *Input) value
}

type constExpr struct{ v value }

func (e *constExpr) eval(*Input) value { return e.v }

// appPropExpr reads an application property. Values are always strings.
type appPropExpr struct{ name string }

func (e *appPropExpr) eval(in *Input) value {
	if in.msg == nil {
		return undefinedValue
	}
	if s, ok := in.msg.AppProperty(e.name); ok {
		return stringValue(s)
	}
	return undefinedValue
}

// sysPropExpr reads $name: the system property first and, unless escaped
// as {$name}, the application property named "$name" after that — the
// order IoT Hub documents (IoT Edge checks the application property first).
type sysPropExpr struct {
	name     string // routing keyword, canonical spelling when known
	appName  string // "$" + name as written; "" when escaped
	fallback bool
}

func (e *sysPropExpr) eval(in *Input) value {
	if in.msg == nil {
		return undefinedValue
	}
	if s, ok := in.msg.SystemProperty(e.name); ok {
		return stringValue(s)
	}
	if e.fallback {
		if s, ok := in.msg.AppProperty(e.appName); ok {
			return stringValue(s)
		}
	}
	return undefinedValue
}

// docExpr reads a path in the message body or the twin.
type docExpr struct {
	twin bool
	path []pathSegment
}

func (e *docExpr) eval(in *Input) value {
	if e.twin {
		d := in.twinDoc()
		if d == nil {
			return undefinedValue
		}
		return d.lookup(in, e.path, true)
	}
	d := in.bodyDoc()
	if d == nil {
		return undefinedValue
	}
	return d.lookup(in, e.path, false)
}

type negExpr struct{ x expr }

func (e *negExpr) eval(in *Input) value {
	v := e.x.eval(in)
	if v.kind != kindNumber {
		return undefinedValue
	}
	return numberValue(-v.n)
}

type notExpr struct{ x expr }

func (e *notExpr) eval(in *Input) value {
	b, ok := truth(e.x.eval(in))
	if !ok {
		return undefinedValue
	}
	return boolValue(!b)
}

// logicExpr reduces a value to a three-valued Boolean; it is what is left
// of "null OR x", which IoT Hub evaluates as x.
type logicExpr struct{ x expr }

func (e *logicExpr) eval(in *Input) value {
	v := e.x.eval(in)
	if v.kind != kindBool {
		return undefinedValue
	}
	return v
}

type arithExpr struct {
	op   tokenKind
	l, r expr
}

func (e *arithExpr) eval(in *Input) value {
	l := e.l.eval(in)
	if l.kind != kindNumber {
		return undefinedValue
	}
	r := e.r.eval(in)
	if r.kind != kindNumber {
		return undefinedValue
	}
	switch e.op {
	case tokPlus:
		return numberValue(l.n + r.n)
	case tokMinus:
		return numberValue(l.n - r.n)
	case tokStar:
		return numberValue(l.n * r.n)
	case tokSlash:
		return numberValue(l.n / r.n)
	default: // tokPercent: truncated remainder, as .NET's % on doubles
		return numberValue(math.Mod(l.n, r.n))
	}
}

// cmpExpr compares two values. The checker admits only operands of one
// static type, or a $body/$twin value against anything but undefined, so
// one rule serves all: undefined if either side is undefined (or an object
// or array), otherwise order by kind, then by value within a kind.
type cmpExpr struct {
	op   tokenKind
	l, r expr
}

func (e *cmpExpr) eval(in *Input) value {
	l := e.l.eval(in)
	if l.kind == kindUndefined || l.kind >= kindObject {
		return undefinedValue
	}
	r := e.r.eval(in)
	if r.kind == kindUndefined || r.kind >= kindObject {
		return undefinedValue
	}
	c := compareValues(l, r)
	switch e.op {
	case tokEq:
		return boolValue(c == 0)
	case tokNe, tokLtGt:
		return boolValue(c != 0)
	case tokLt:
		return boolValue(c < 0)
	case tokLe:
		return boolValue(c <= 0)
	case tokGt:
		return boolValue(c > 0)
	default: // tokGe
		return boolValue(c >= 0)
	}
}

func compareValues(l, r value) int {
	if l.kind != r.kind {
		return cmpOrdered(l.kind, r.kind)
	}
	switch l.kind {
	case kindBool:
		return cmpOrdered(b2i(l.b), b2i(r.b))
	case kindNumber:
		return cmpOrdered(l.n, r.n)
	case kindString:
		return compareUTF16(l.s, r.s)
	}
	return 0 // null = null
}

func cmpOrdered[T int | float64 | kind](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// andExpr is Kleene AND: false if either side is false, even if the other
// is undefined; true if both are true; undefined otherwise. The right side
// is not evaluated when the left is false, which spares body parsing.
type andExpr struct{ l, r expr }

func (e *andExpr) eval(in *Input) value {
	lb, lok := truth(e.l.eval(in))
	if lok && !lb {
		return boolValue(false)
	}
	rb, rok := truth(e.r.eval(in))
	if rok && !rb {
		return boolValue(false)
	}
	if lok && rok {
		return boolValue(true)
	}
	return undefinedValue
}

// orExpr is Kleene OR, the dual of andExpr.
type orExpr struct{ l, r expr }

func (e *orExpr) eval(in *Input) value {
	lb, lok := truth(e.l.eval(in))
	if lok && lb {
		return boolValue(true)
	}
	rb, rok := truth(e.r.eval(in))
	if rok && rb {
		return boolValue(true)
	}
	if lok && rok {
		return boolValue(false)
	}
	return undefinedValue
}

// coalesceExpr is a ?? b: a unless a is undefined. JSON null is defined.
type coalesceExpr struct{ l, r expr }

func (e *coalesceExpr) eval(in *Input) value {
	if v := e.l.eval(in); v.kind != kindUndefined {
		return v
	}
	return e.r.eval(in)
}

type call1Expr struct {
	fn func(in *Input, a value) value
	a  expr
}

func (e *call1Expr) eval(in *Input) value { return e.fn(in, e.a.eval(in)) }

type call2Expr struct {
	fn   func(in *Input, a, b value) value
	a, b expr
}

func (e *call2Expr) eval(in *Input) value { return e.fn(in, e.a.eval(in), e.b.eval(in)) }

type call3Expr struct {
	fn      func(in *Input, a, b, c value) value
	a, b, c expr
}

func (e *call3Expr) eval(in *Input) value {
	return e.fn(in, e.a.eval(in), e.b.eval(in), e.c.eval(in))
}

// concatExpr is CONCAT(a, b, ...) and a || b. It builds the result in the
// Input's arena, so it does not allocate once the arena has grown. All
// arguments are evaluated before anything is appended because an argument
// such as LOWER(x) may itself append to the arena.
type concatExpr struct{ args []expr }

func (e *concatExpr) eval(in *Input) value {
	var buf [8]value
	vals := buf[:0]
	if len(e.args) > len(buf) {
		vals = make([]value, 0, len(e.args))
	}
	for _, a := range e.args {
		v := a.eval(in)
		if v.kind != kindString {
			return undefinedValue
		}
		vals = append(vals, v)
	}
	mark := len(in.arena)
	for _, v := range vals {
		in.arena = append(in.arena, v.s...)
	}
	return stringValue(in.arenaString(mark))
}
