package expr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Expr is a parsed expression: one of *StringLit, *IntLit, *Call, *Member
// or *Index. The node types are exported so the template engine can walk a
// tree (to find reference('name') calls that imply dependencies, say).
type Expr interface {
	// Eval evaluates the expression. A nil ctx is an empty Context.
	Eval(ctx *Context) (any, error)
	// String renders the expression in ARM syntax, without the brackets.
	String() string
	// Pos is the node's 0-based character offset in the template string.
	Pos() int

	eval(ctx *Context) (any, error)
	write(b *strings.Builder)
}

// StringLit is a 'quoted' string, or a whole template string that isn't an
// expression.
type StringLit struct {
	Value string
	pos   int
}

// IntLit is an integer literal.
type IntLit struct {
	Value int64
	pos   int
}

// Call is a function call. Name is spelled as written; function names are
// case-insensitive.
type Call struct {
	Name string
	Args []Expr
	pos  int
	fn   *function // nil for user-defined functions
}

// Member is property access: Target.Name.
type Member struct {
	Target Expr
	Name   string
	pos    int
}

// Index is index or property access: Target[Index].
type Index struct {
	Target Expr
	Index  Expr
	pos    int
}

func (e *StringLit) Pos() int { return e.pos }
func (e *IntLit) Pos() int    { return e.pos }
func (e *Call) Pos() int      { return e.pos }
func (e *Member) Pos() int    { return e.pos }
func (e *Index) Pos() int     { return e.pos }

func (e *StringLit) Eval(ctx *Context) (any, error) { return e.eval(ctx.begin()) }
func (e *IntLit) Eval(ctx *Context) (any, error)    { return e.eval(ctx.begin()) }
func (e *Call) Eval(ctx *Context) (any, error)      { return e.eval(ctx.begin()) }
func (e *Member) Eval(ctx *Context) (any, error)    { return e.eval(ctx.begin()) }
func (e *Index) Eval(ctx *Context) (any, error)     { return e.eval(ctx.begin()) }

func (e *StringLit) String() string { return render(e) }
func (e *IntLit) String() string    { return render(e) }
func (e *Call) String() string      { return render(e) }
func (e *Member) String() string    { return render(e) }
func (e *Index) String() string     { return render(e) }

func render(e Expr) string {
	var b strings.Builder
	e.write(&b)
	return b.String()
}

// Template renders a parsed template string back to template form:
// "[…]" for an expression, the escaped literal for a plain string.
func Template(e Expr) string {
	if s, ok := e.(*StringLit); ok && s.pos == 0 {
		if IsExpression(s.Value) || strings.HasPrefix(s.Value, "[[") && strings.HasSuffix(s.Value, "]") {
			return "[" + s.Value
		}
		return s.Value
	}
	return "[" + e.String() + "]"
}

func (e *StringLit) write(b *strings.Builder) {
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(e.Value, "'", "''"))
	b.WriteByte('\'')
}

func (e *IntLit) write(b *strings.Builder) { b.WriteString(strconv.FormatInt(e.Value, 10)) }

func (e *Call) write(b *strings.Builder) {
	b.WriteString(e.Name)
	b.WriteByte('(')
	for i, a := range e.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		a.write(b)
	}
	b.WriteByte(')')
}

func (e *Member) write(b *strings.Builder) {
	e.Target.write(b)
	b.WriteByte('.')
	b.WriteString(e.Name)
}

func (e *Index) write(b *strings.Builder) {
	e.Target.write(b)
	b.WriteByte('[')
	e.Index.write(b)
	b.WriteByte(']')
}

// Walk calls fn for e and every node below it, depth first, stopping
// everything as soon as fn returns false. It reports whether it finished.
func Walk(e Expr, fn func(Expr) bool) bool {
	if e == nil {
		return true
	}
	if !fn(e) {
		return false
	}
	switch t := e.(type) {
	case *Call:
		for _, a := range t.Args {
			if !Walk(a, fn) {
				return false
			}
		}
	case *Member:
		return Walk(t.Target, fn)
	case *Index:
		return Walk(t.Target, fn) && Walk(t.Index, fn)
	}
	return true
}

// Calls lists every function call in e, outermost first.
func Calls(e Expr) []*Call {
	var out []*Call
	Walk(e, func(n Expr) bool {
		if c, ok := n.(*Call); ok {
			out = append(out, c)
		}
		return true
	})
	return out
}

// Builtin reports whether the call is to a library function (including a
// list* action) rather than a user-defined one.
func (e *Call) Builtin() bool { return e.fn != nil }

func (e *StringLit) eval(*Context) (any, error) { return e.Value, nil }
func (e *IntLit) eval(*Context) (any, error)    { return e.Value, nil }

func (e *Member) eval(ctx *Context) (any, error) {
	target, err := e.Target.eval(ctx)
	if err != nil {
		return nil, err
	}
	return property(target, e.Name)
}

func (e *Index) eval(ctx *Context) (any, error) {
	target, err := e.Target.eval(ctx)
	if err != nil {
		return nil, err
	}
	key, err := e.Index.eval(ctx)
	if err != nil {
		return nil, err
	}
	if k, ok := key.(string); ok {
		return property(target, k)
	}
	k, ok := asInt(key)
	if !ok {
		return nil, standalone("The language expression index must be a string or an integer, not a value of type '%s'", typeName(key))
	}
	arr, ok := target.([]any)
	if !ok {
		return nil, standalone("The language expression property array index '%d' can't be applied to a value of type '%s'; only arrays are indexed by number", k, typeName(target))
	}
	if k < 0 || k >= int64(len(arr)) {
		return nil, standalone("The language expression property array index '%d' is out of bounds; the array has %d element%s", k, len(arr), plural(len(arr), "", "s"))
	}
	return arr[k], nil
}

func property(target any, name string) (any, error) {
	obj, ok := target.(map[string]any)
	if !ok {
		if target == nil {
			return nil, standalone("The language expression property '%s' can't be evaluated: the value it is read from is null", name)
		}
		return nil, standalone("The language expression property '%s' can't be evaluated: the value it is read from is of type '%s', not an object", name, typeName(target))
	}
	v, ok := lookupProperty(obj, name)
	if !ok {
		return nil, standalone("The language expression property '%s' doesn't exist, available properties are '%s'.", name, strings.Join(sortedKeys(obj), ", "))
	}
	return v, nil
}

func (e *Call) eval(ctx *Context) (any, error) {
	if err := ctx.run.charge(1); err != nil {
		return nil, err
	}
	if e.fn == nil {
		return e.evalUserFunction(ctx)
	}
	if msg := e.fn.allowedAt(ctx, e.Name); msg != "" {
		return nil, &EvalError{Function: e.Name, Pos: e.pos, Err: errors.New(msg), standalone: true}
	}
	var res any
	var err error
	if e.fn.lazy != nil {
		res, err = e.fn.lazy(ctx, e)
	} else {
		var args []any
		if args, err = e.evalArgs(ctx); err == nil {
			res, err = e.fn.eval(ctx, args)
		}
	}
	if err != nil {
		return nil, e.wrap(err)
	}
	if err := ctx.run.charge(sizeOf(res)); err != nil {
		return nil, err
	}
	return res, nil
}

func (e *Call) evalArgs(ctx *Context) ([]any, error) {
	args := make([]any, len(e.Args))
	for i, a := range e.Args {
		v, err := a.eval(ctx)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	return args, nil
}

func (e *Call) evalUserFunction(ctx *Context) (any, error) {
	if ctx.UserFunction == nil {
		return nil, &EvalError{Function: e.Name, Pos: e.pos, standalone: true,
			Err: fmt.Errorf("The template function '%s' is not valid: the template defines no user functions", e.Name)}
	}
	args, err := e.evalArgs(ctx)
	if err != nil {
		return nil, err
	}
	res, err := ctx.UserFunction(ctx, e.Name, args)
	if err != nil {
		return nil, e.wrap(err)
	}
	return res, nil
}

func (e *Call) wrap(err error) error {
	var ee *EvalError
	if errors.As(err, &ee) {
		return err
	}
	return &EvalError{Function: e.Name, Pos: e.pos, Err: err}
}

// sizeOf is the shallow size of a result, charged to the evaluation budget
// so a loop that doubles a string or an array stops before memory does.
func sizeOf(v any) int {
	switch t := v.(type) {
	case string:
		return len(t) / 16
	case []any:
		return len(t)
	case map[string]any:
		return len(t)
	}
	return 0
}

// EvalError is a failed evaluation. Err's message is ARM-style; Function is
// the function that failed, as written (empty for property or index access).
type EvalError struct {
	Function string
	Pos      int
	Err      error
	// standalone errors carry a complete message that doesn't need the
	// "Unable to evaluate" prefix (missing parameters, disallowed places).
	standalone bool
}

func (e *EvalError) Error() string {
	if e.Function == "" || e.standalone {
		return e.Err.Error()
	}
	return fmt.Sprintf("Unable to evaluate template language function '%s': %s", e.Function, e.Err.Error())
}

func (e *EvalError) Unwrap() error { return e.Err }

func standalone(format string, args ...any) error {
	return &EvalError{Err: fmt.Errorf(format, args...), standalone: true}
}
