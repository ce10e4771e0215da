package query

import "sort"

// Condition is a compiled route condition. It is immutable and safe for
// concurrent use; evaluate it once per message with Eval.
type Condition struct {
	src      string
	root     expr
	null     bool // statically the null literal, which IoT Hub reads as false
	usesBody bool
	usesTwin bool
}

// Compile parses and type-checks a route condition. The error, if any, is
// an ErrorList of *Error values carrying positions. The empty condition
// compiles and is always Undefined, as in IoT Hub's engine; the ARM layer
// is what turns an absent condition into "true".
func Compile(condition string) (*Condition, error) {
	tree, perr := parse(condition)
	if perr != nil {
		return nil, ErrorList{perr}
	}
	c := &Condition{src: condition, root: &constExpr{undefinedValue}}
	if tree == nil {
		return c, nil
	}
	var ck checker
	root, t := ck.check(tree)
	if len(ck.errs) > 0 {
		sort.SliceStable(ck.errs, func(i, j int) bool {
			a, b := ck.errs[i].Start, ck.errs[j].Start
			return a.Line < b.Line || (a.Line == b.Line && a.Column < b.Column)
		})
		return nil, ck.errs
	}
	c.root, c.null = root, t == tyNull
	c.usesBody, c.usesTwin = ck.usesBody, ck.usesTwin
	return c, nil
}

// MustCompile is Compile for conditions known to be valid, such as the
// fallback route's "true"; it panics on error.
func MustCompile(condition string) *Condition {
	c, err := Compile(condition)
	if err != nil {
		panic("query: " + err.Error())
	}
	return c
}

// String returns the condition's source text.
func (c *Condition) String() string { return c.src }

// UsesBody reports whether the condition reads $body, so that the engine
// can skip making the body available.
func (c *Condition) UsesBody() bool { return c.usesBody }

// UsesTwin reports whether the condition reads $twin, so that the engine
// can skip fetching the twin.
func (c *Condition) UsesTwin() bool { return c.usesTwin }

// Eval evaluates the condition against the message in. Only True routes
// the message. Evaluating a condition that reads only properties does not
// allocate.
func (c *Condition) Eval(in *Input) Result {
	if in == nil {
		in = &Input{}
	}
	in.arena = in.arena[:0] // values of the previous Eval are all dead
	v := c.root.eval(in)
	switch {
	case v.kind == kindBool && v.b:
		return True
	case v.kind == kindBool, c.null:
		return False
	}
	return Undefined
}

// EvalMessage evaluates the condition against a single message. It
// allocates an Input; the routing engine should reuse one per worker and
// call Eval instead.
func (c *Condition) EvalMessage(m Message) Result {
	return c.Eval(NewInput(m))
}
