package sqlfilter

import "strings"

// tri is SQL's three-valued logic.
type tri int

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

type node interface{ eval(Properties) tri }

type operand interface {
	value(Properties) (Value, bool)
}

type propRef struct {
	name   string
	system bool
}

func (r propRef) value(p Properties) (Value, bool) {
	var v Value
	var ok bool
	if r.system {
		v, ok = p.System(r.name)
	} else {
		v, ok = p.User(r.name)
	}
	if !ok || v.Kind == Null {
		return Value{}, false
	}
	return v, true
}

type lit struct{ v Value }

func (l lit) value(Properties) (Value, bool) { return l.v, l.v.Kind != Null }

type orNode struct{ l, r node }

func (n orNode) eval(p Properties) tri {
	a := n.l.eval(p)
	if a == triTrue {
		return triTrue
	}
	b := n.r.eval(p)
	switch {
	case b == triTrue:
		return triTrue
	case a == triUnknown || b == triUnknown:
		return triUnknown
	}
	return triFalse
}

type andNode struct{ l, r node }

func (n andNode) eval(p Properties) tri {
	a := n.l.eval(p)
	if a == triFalse {
		return triFalse
	}
	b := n.r.eval(p)
	switch {
	case b == triFalse:
		return triFalse
	case a == triUnknown || b == triUnknown:
		return triUnknown
	}
	return triTrue
}

type notNode struct{ n node }

func (n notNode) eval(p Properties) tri {
	switch n.n.eval(p) {
	case triTrue:
		return triFalse
	case triFalse:
		return triTrue
	}
	return triUnknown
}

type existsNode struct{ r propRef }

func (n existsNode) eval(p Properties) tri {
	var ok bool
	if n.r.system {
		_, ok = p.System(n.r.name)
	} else {
		_, ok = p.User(n.r.name)
	}
	return triOf(ok)
}

type isNullNode struct{ o operand }

func (n isNullNode) eval(p Properties) tri {
	_, ok := n.o.value(p)
	return triOf(!ok)
}

type cmpNode struct {
	op   string
	l, r operand
}

func (n cmpNode) eval(p Properties) tri {
	a, ok1 := n.l.value(p)
	b, ok2 := n.r.value(p)
	if !ok1 || !ok2 {
		return triUnknown
	}
	c, ok := compare(a, b)
	if !ok {
		return triUnknown
	}
	switch n.op {
	case "=":
		return triOf(c == 0)
	case "<>":
		return triOf(c != 0)
	case "<":
		return triOf(c < 0)
	case ">":
		return triOf(c > 0)
	case "<=":
		return triOf(c <= 0)
	case ">=":
		return triOf(c >= 0)
	}
	return triUnknown
}

// compare orders two non-null values; ok is false for incompatible types
// (a string against a number), which SQL treats as Unknown. Numbers compare
// across integer and decimal; booleans only support equality.
func compare(a, b Value) (int, bool) {
	switch {
	case a.Kind == String && b.Kind == String:
		return strings.Compare(a.S, b.S), true
	case isNumber(a) && isNumber(b):
		if a.Kind == Int && b.Kind == Int {
			return cmp3(a.I < b.I, a.I > b.I), true
		}
		x, y := asFloat(a), asFloat(b)
		return cmp3(x < y, x > y), true
	case a.Kind == Bool && b.Kind == Bool:
		if a.B == b.B {
			return 0, true
		}
		return cmp3(!a.B, a.B), true
	}
	return 0, false
}

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

func isNumber(v Value) bool { return v.Kind == Int || v.Kind == Float }

func asFloat(v Value) float64 {
	if v.Kind == Int {
		return float64(v.I)
	}
	return v.F
}

type inNode struct {
	o    operand
	list []Value
}

func (n inNode) eval(p Properties) tri {
	v, ok := n.o.value(p)
	if !ok {
		return triUnknown
	}
	unknown := false
	for _, item := range n.list {
		if item.Kind == Null {
			unknown = true
			continue
		}
		if c, ok := compare(v, item); ok && c == 0 {
			return triTrue
		}
	}
	if unknown {
		return triUnknown
	}
	return triFalse
}

type likeNode struct {
	o   operand
	pat []rune
	esc rune
}

func (n likeNode) eval(p Properties) tri {
	v, ok := n.o.value(p)
	if !ok {
		return triUnknown
	}
	if v.Kind != String {
		return triUnknown
	}
	return triOf(like([]rune(v.S), n.pat, n.esc))
}

// like matches s against a LIKE pattern: % is any run, _ one character, and
// esc (when not 0) makes the next pattern character literal. It is iterative
// with backtracking to the last %, so it is linear in practice and never
// recurses on hostile patterns.
func like(s, pat []rune, esc rune) bool {
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		if pi < len(pat) {
			c := pat[pi]
			switch {
			case esc != 0 && c == esc && pi+1 < len(pat):
				if pat[pi+1] == s[si] {
					si++
					pi += 2
					continue
				}
			case c == '%':
				star, mark = pi, si
				pi++
				continue
			case c == '_' || c == s[si]:
				si++
				pi++
				continue
			}
		}
		if star < 0 {
			return false
		}
		pi = star + 1
		mark++
		si = mark
	}
	for pi < len(pat) && pat[pi] == '%' {
		pi++
	}
	return pi == len(pat)
}
