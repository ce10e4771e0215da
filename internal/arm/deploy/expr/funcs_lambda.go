package expr

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Lambda functions (template-functions-lambda.md): lambda('x', ['y',]
// body) may only be a direct argument of these; its variables are read with
// lambdaVariables('x'). filter, map and reduce also pass the element's index
// to a lambda that declares one more variable, as Bicep's (item, i) => …
// compiles to.
func lambdaFunctions() []*function {
	return []*function{
		{name: "lambda", minArgs: 2, maxArgs: -1, isLambda: true, lazy: func(*Context, *Call) (any, error) {
			return nil, errors.New("lambda(...) can only be an argument of filter, map, reduce, sort, toObject, mapValues or groupBy")
		}},
		fixed("lambdaVariables", 1, fnLambdaVariables),
		{name: "filter", minArgs: 2, maxArgs: 2, lambdaArgs: []int{1}, lazy: fnFilter},
		{name: "map", minArgs: 2, maxArgs: 2, lambdaArgs: []int{1}, lazy: fnMap},
		{name: "reduce", minArgs: 3, maxArgs: 3, lambdaArgs: []int{2}, lazy: fnReduce},
		{name: "sort", minArgs: 2, maxArgs: 2, lambdaArgs: []int{1}, lazy: fnSort},
		{name: "toObject", minArgs: 2, maxArgs: 3, lambdaArgs: []int{1, 2}, lazy: fnToObject},
		{name: "mapValues", minArgs: 2, maxArgs: 2, lambdaArgs: []int{1}, lazy: fnMapValues},
		{name: "groupBy", minArgs: 2, maxArgs: 3, lambdaArgs: []int{1, 2}, lazy: fnGroupBy},
	}
}

// lambdaValue is a lambda(...) argument ready to be invoked.
type lambdaValue struct {
	fn     string // the function that invokes it, for messages
	params []string
	body   Expr
}

func (c *Call) lambda(i int) *lambdaValue {
	l := c.Args[i].(*Call) // the parser guarantees it
	params := make([]string, len(l.Args)-1)
	for j, a := range l.Args[:len(l.Args)-1] {
		params[j] = a.(*StringLit).Value
	}
	return &lambdaValue{fn: c.fn.name, params: params, body: l.Args[len(l.Args)-1]}
}

// invoke binds the lambda's variables to the first len(params) values; a
// lambda may leave off trailing ones (the index), not ask for more.
func (l *lambdaValue) invoke(ctx *Context, values ...any) (any, error) {
	if len(l.params) > len(values) {
		return nil, fmt.Errorf("the lambda declares %d variables, but %s supplies %d", len(l.params), l.fn, len(values))
	}
	if err := ctx.run.charge(1); err != nil {
		return nil, err
	}
	d := ctx.derive()
	d.lambdas = &lambdaFrame{names: l.params, values: values[:len(l.params)], parent: ctx.lambdas}
	return l.body.eval(d)
}

func fnLambdaVariables(ctx *Context, args []any) (any, error) {
	name, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	var known []string
	for f := ctx.lambdas; f != nil; f = f.parent {
		for i, n := range f.names {
			if strings.EqualFold(n, name) {
				return f.values[i], nil
			}
		}
		known = append(known, f.names...)
	}
	if len(known) == 0 {
		return nil, fmt.Errorf("the lambda variable '%s' is read outside any lambda", name)
	}
	return nil, fmt.Errorf("the lambda variable '%s' is not defined; the enclosing lambdas declare '%s'", name, strings.Join(known, "', '"))
}

// arrayArg evaluates argument i, which must be an array.
func (c *Call) arrayArg(ctx *Context, i int) ([]any, error) {
	v, err := c.Args[i].eval(ctx)
	if err != nil {
		return nil, err
	}
	return argArray([]any{v}, 0)
}

func fnFilter(ctx *Context, c *Call) (any, error) {
	arr, err := c.arrayArg(ctx, 0)
	if err != nil {
		return nil, err
	}
	l := c.lambda(1)
	out := []any{}
	for i, e := range arr {
		keep, err := l.invoke(ctx, e, int64(i))
		if err != nil {
			return nil, err
		}
		b, ok := keep.(bool)
		if !ok {
			return nil, fmt.Errorf("the lambda must return a boolean, but returned a value of type '%s'", typeName(keep))
		}
		if b {
			out = append(out, e)
		}
	}
	return out, nil
}

func fnMap(ctx *Context, c *Call) (any, error) {
	arr, err := c.arrayArg(ctx, 0)
	if err != nil {
		return nil, err
	}
	l := c.lambda(1)
	out := make([]any, len(arr))
	for i, e := range arr {
		if out[i], err = l.invoke(ctx, e, int64(i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func fnReduce(ctx *Context, c *Call) (any, error) {
	arr, err := c.arrayArg(ctx, 0)
	if err != nil {
		return nil, err
	}
	acc, err := c.Args[1].eval(ctx)
	if err != nil {
		return nil, err
	}
	l := c.lambda(2)
	for i, e := range arr {
		if acc, err = l.invoke(ctx, acc, e, int64(i)); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

// fnSort orders with a "less" lambda: true means the first element goes
// before the second. The sort is stable.
func fnSort(ctx *Context, c *Call) (any, error) {
	arr, err := c.arrayArg(ctx, 0)
	if err != nil {
		return nil, err
	}
	l := c.lambda(1)
	var failed error
	less := func(a, b any) bool {
		if failed != nil {
			return false
		}
		r, err := l.invoke(ctx, a, b)
		if err != nil {
			failed = err
			return false
		}
		v, ok := r.(bool)
		if !ok {
			failed = fmt.Errorf("the lambda must return a boolean, but returned a value of type '%s'", typeName(r))
		}
		return v
	}
	out := append([]any{}, arr...)
	slices.SortStableFunc(out, func(a, b any) int {
		switch {
		case less(a, b):
			return -1
		case less(b, a):
			return 1
		}
		return 0
	})
	if failed != nil {
		return nil, failed
	}
	return out, nil
}

func lambdaKey(ctx *Context, l *lambdaValue, e any) (string, error) {
	k, err := l.invoke(ctx, e)
	if err != nil {
		return "", err
	}
	s, ok := k.(string)
	if !ok {
		return "", fmt.Errorf("the key lambda must return a string, but returned a value of type '%s'", typeName(k))
	}
	return s, nil
}

func fnToObject(ctx *Context, c *Call) (any, error) {
	arr, err := c.arrayArg(ctx, 0)
	if err != nil {
		return nil, err
	}
	keyOf := c.lambda(1)
	out := make(map[string]any, len(arr))
	for _, e := range arr {
		k, err := lambdaKey(ctx, keyOf, e)
		if err != nil {
			return nil, err
		}
		v := e
		if len(c.Args) > 2 {
			if v, err = c.lambda(2).invoke(ctx, e); err != nil {
				return nil, err
			}
		}
		out[k] = v
	}
	return out, nil
}

func fnMapValues(ctx *Context, c *Call) (any, error) {
	v, err := c.Args[0].eval(ctx)
	if err != nil {
		return nil, err
	}
	obj, err := argObject([]any{v}, 0)
	if err != nil {
		return nil, err
	}
	l := c.lambda(1)
	out := make(map[string]any, len(obj))
	for k, e := range obj {
		if out[k], err = l.invoke(ctx, e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func fnGroupBy(ctx *Context, c *Call) (any, error) {
	arr, err := c.arrayArg(ctx, 0)
	if err != nil {
		return nil, err
	}
	keyOf := c.lambda(1)
	out := map[string]any{}
	for _, e := range arr {
		k, err := lambdaKey(ctx, keyOf, e)
		if err != nil {
			return nil, err
		}
		v := e
		if len(c.Args) > 2 {
			if v, err = c.lambda(2).invoke(ctx, e); err != nil {
				return nil, err
			}
		}
		group, _ := out[k].([]any)
		out[k] = append(group, v)
	}
	return out, nil
}
