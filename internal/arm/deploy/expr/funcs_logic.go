package expr

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/text/collate"
	"golang.org/x/text/language"
)

// Comparison, logical and numeric functions.
func logicFunctions() []*function {
	return []*function{
		{name: "coalesce", minArgs: 1, maxArgs: -1, lazy: fnCoalesce},
		fixed("equals", 2, pure(func(args []any) (any, error) { return deepEqual(args[0], args[1]), nil })),
		fixed("less", 2, pure(func(args []any) (any, error) { return compareArgs(args, func(c int) bool { return c < 0 }) })),
		fixed("lessOrEquals", 2, pure(func(args []any) (any, error) { return compareArgs(args, func(c int) bool { return c <= 0 }) })),
		fixed("greater", 2, pure(func(args []any) (any, error) { return compareArgs(args, func(c int) bool { return c > 0 }) })),
		fixed("greaterOrEquals", 2, pure(func(args []any) (any, error) { return compareArgs(args, func(c int) bool { return c >= 0 }) })),

		{name: "and", minArgs: 1, maxArgs: -1, lazy: func(ctx *Context, c *Call) (any, error) { return andOr(ctx, c, false) }},
		{name: "or", minArgs: 1, maxArgs: -1, lazy: func(ctx *Context, c *Call) (any, error) { return andOr(ctx, c, true) }},
		fixed("not", 1, pure(func(args []any) (any, error) {
			b, err := argBool(args, 0)
			return !b, err
		})),
		{name: "if", minArgs: 3, maxArgs: 3, lazy: fnIf},
		fixed("bool", 1, pure(fnBool)),
		fixed("true", 0, pure(func([]any) (any, error) { return true, nil })),
		fixed("false", 0, pure(func([]any) (any, error) { return false, nil })),

		fixed("add", 2, pure(func(args []any) (any, error) { return arithmetic(args, opAdd) })),
		fixed("sub", 2, pure(func(args []any) (any, error) { return arithmetic(args, opSub) })),
		fixed("mul", 2, pure(func(args []any) (any, error) { return arithmetic(args, opMul) })),
		fixed("div", 2, pure(func(args []any) (any, error) { return arithmetic(args, opDiv) })),
		fixed("mod", 2, pure(func(args []any) (any, error) { return arithmetic(args, opMod) })),
		fixed("int", 1, pure(fnInt)),
		fixed("float", 1, pure(fnFloat)),
		ranged("copyIndex", 0, 2, fnCopyIndex),
	}
}

// fnCoalesce returns the first argument that isn't null, evaluating no
// further, so coalesce(x, y.z) doesn't fail when x is set.
func fnCoalesce(ctx *Context, c *Call) (any, error) {
	for _, a := range c.Args {
		v, err := a.eval(ctx)
		if err != nil {
			return nil, err
		}
		if v != nil {
			return v, nil
		}
	}
	return nil, nil
}

// compareArgs orders two numbers, or two strings the way .NET's invariant
// culture does (greater('A', 'a') is true: case breaks ties, lower first).
func compareArgs(args []any, test func(int) bool) (any, error) {
	a, b := args[0], args[1]
	if af, ok := asFloat(a); ok {
		bf, ok := asFloat(b)
		if !ok {
			return nil, fmt.Errorf("the arguments must be both numbers or both strings, but they are of types '%s' and '%s'", typeName(a), typeName(b))
		}
		ai, aInt := asInt(a)
		bi, bInt := asInt(b)
		switch {
		case aInt && bInt:
			return test(cmpOrdered(ai, bi)), nil
		default:
			return test(cmpOrdered(af, bf)), nil
		}
	}
	as, ok1 := a.(string)
	bs, ok2 := b.(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("the arguments must be both numbers or both strings, but they are of types '%s' and '%s'", typeName(a), typeName(b))
	}
	return test(compareCulture(as, bs)), nil
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareCulture approximates .NET's invariant-culture string comparison
// with the Unicode root collation. A collator isn't safe for concurrent
// use, so each comparison gets its own.
func compareCulture(a, b string) int {
	if a == b {
		return 0
	}
	return collate.New(language.Und).CompareString(a, b)
}

func andOr(ctx *Context, c *Call, or bool) (any, error) {
	for i, a := range c.Args {
		v, err := a.eval(ctx)
		if err != nil {
			return nil, err
		}
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("the %s argument must be a boolean, but the value given is of type '%s'", ordinal(i), typeName(v))
		}
		// Short-circuit: templates guard with and(not(empty(x)), x[0].y).
		if b == or {
			return b, nil
		}
	}
	return !or, nil
}

// fnIf evaluates only the branch it returns, as ARM documents.
func fnIf(ctx *Context, c *Call) (any, error) {
	cond, err := c.Args[0].eval(ctx)
	if err != nil {
		return nil, err
	}
	b, ok := cond.(bool)
	if !ok {
		return nil, fmt.Errorf("the condition (first argument) must be a boolean, but the value given is of type '%s'", typeName(cond))
	}
	if b {
		return c.Args[1].eval(ctx)
	}
	return c.Args[2].eval(ctx)
}

func fnBool(args []any) (any, error) {
	switch t := args[0].(type) {
	case bool:
		return t, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("the string '%s' is not 'true' or 'false'", t)
	}
	if n, ok := asInt(args[0]); ok {
		return n != 0, nil
	}
	return nil, argTypeError(args, 0, "a boolean, a string or an integer")
}

type arithOp int

const (
	opAdd arithOp = iota
	opSub
	opMul
	opDiv
	opMod
)

// arithmetic is 64-bit integer arithmetic with overflow detection; div
// truncates toward zero and mod takes the dividend's sign, as .NET does.
func arithmetic(args []any, op arithOp) (any, error) {
	a, err := argInt(args, 0)
	if err != nil {
		return nil, err
	}
	b, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	overflow := errors.New("the result overflows a 64-bit integer")
	switch op {
	case opAdd:
		r := a + b
		if (a > 0 && b > 0 && r < 0) || (a < 0 && b < 0 && r >= 0) {
			return nil, overflow
		}
		return r, nil
	case opSub:
		r := a - b
		if (a >= 0 && b < 0 && r < 0) || (a < 0 && b > 0 && r >= 0) {
			return nil, overflow
		}
		return r, nil
	case opMul:
		if a == 0 || b == 0 {
			return int64(0), nil
		}
		r := a * b
		if r/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
			return nil, overflow
		}
		return r, nil
	}
	if b == 0 {
		return nil, errors.New("attempted to divide by zero")
	}
	if a == math.MinInt64 && b == -1 {
		if op == opMod {
			return int64(0), nil
		}
		return nil, overflow
	}
	if op == opDiv {
		return a / b, nil
	}
	return a % b, nil
}

func fnInt(args []any) (any, error) {
	switch t := args[0].(type) {
	case int64:
		return t, nil
	case float64:
		// Convert.ToInt64 rounds half to even.
		r := math.RoundToEven(t)
		if r < -9.2e18 || r > 9.2e18 || math.IsNaN(r) {
			return nil, fmt.Errorf("the value %s doesn't fit in a 64-bit integer", formatFloat(t))
		}
		return int64(r), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("the string '%s' can't be converted to an integer", t)
		}
		return n, nil
	}
	return nil, argTypeError(args, 0, "an integer or a string")
}

func fnFloat(args []any) (any, error) {
	switch t := args[0].(type) {
	case int64:
		return float64(t), nil
	case float64:
		return t, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return nil, fmt.Errorf("the string '%s' can't be converted to a floating point number", t)
		}
		return f, nil
	}
	return nil, argTypeError(args, 0, "an integer or a string")
}

// fnCopyIndex is copyIndex([loopName], [offset]): the zero-based iteration
// of the named loop, or without a name of the enclosing resource or output
// loop, plus the offset.
func fnCopyIndex(ctx *Context, args []any) (any, error) {
	var name string
	var offset int64
	switch len(args) {
	case 1:
		if n, ok := asInt(args[0]); ok {
			offset = n
		} else if s, ok := args[0].(string); ok {
			name = s
		} else {
			return nil, argTypeError(args, 0, "a loop name or an offset")
		}
	case 2:
		var err error
		if name, err = argString(args, 0); err != nil {
			return nil, err
		}
		if offset, err = argInt(args, 1); err != nil {
			return nil, err
		}
	}
	var named []string
	for f := ctx.copies; f != nil; f = f.parent {
		if name == "" && f.resource || name != "" && strings.EqualFold(f.name, name) {
			return f.index + offset, nil
		}
		named = append(named, f.name)
	}
	switch {
	case name == "" && len(named) > 0:
		return nil, &EvalError{Function: "copyIndex", standalone: true, Err: fmt.Errorf("The template function 'copyIndex' is not expected at this location: copyIndex() without a loop name needs a resource or output copy loop; here, name the loop: copyIndex('%s')", named[0])}
	case name == "":
		return nil, &EvalError{Function: "copyIndex", standalone: true, Err: errors.New("The template function 'copyIndex' is not expected at this location. The function can only be used in a resource, property, variable or output with copy specified.")}
	case len(named) > 0:
		return nil, fmt.Errorf("there is no copy loop named '%s' here; the enclosing loops are '%s'", name, strings.Join(named, "', '"))
	}
	return nil, &EvalError{Function: "copyIndex", standalone: true, Err: fmt.Errorf("The template function 'copyIndex' is not expected at this location: there is no copy loop named '%s' around it.", name)}
}
