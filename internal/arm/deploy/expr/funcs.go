package expr

import (
	"fmt"
	"slices"
	"strings"
)

// function is one entry of the read-only function library.
type function struct {
	name             string // canonical spelling
	minArgs, maxArgs int    // maxArgs < 0: no limit
	// eval gets evaluated arguments; lazy gets the call and evaluates what
	// it needs (if, and, or, the lambda functions, list*).
	eval func(ctx *Context, args []any) (any, error)
	lazy func(ctx *Context, c *Call) (any, error)
	// sites restricts where the function may appear (nil: anywhere);
	// siteHint finishes ARM's "not expected at this location" message.
	sites    []Site
	siteHint string
	// lambdaArgs are the argument positions that must be lambda(...).
	lambdaArgs []int
	isLambda   bool
	// notInLambda marks functions ARM refuses inside a lambda body
	// (reference, references, list*).
	notInLambda bool
}

func (f *function) arity() string {
	switch {
	case f.maxArgs < 0:
		return fmt.Sprintf("at least %d argument%s", f.minArgs, plural(f.minArgs, "", "s"))
	case f.minArgs == f.maxArgs:
		return fmt.Sprintf("%d argument%s", f.minArgs, plural(f.minArgs, "", "s"))
	}
	return fmt.Sprintf("%d to %d arguments", f.minArgs, f.maxArgs)
}

func (f *function) takesLambda(i int) bool { return slices.Contains(f.lambdaArgs, i) }

func (f *function) allowedAt(ctx *Context, called string) string {
	if f.notInLambda && ctx.lambdas != nil {
		return fmt.Sprintf("The template function '%s' is not expected at this location: it can't be used inside a lambda expression.", called)
	}
	if f.sites == nil || ctx.Site == SiteAny || slices.Contains(f.sites, ctx.Site) {
		return ""
	}
	msg := fmt.Sprintf("The template function '%s' is not expected at this location (%s).", called, ctx.Site)
	if f.siteHint != "" {
		msg += " " + f.siteHint
	}
	return msg
}

// functionList is the library; functionIndex maps lower-case names to it.
// Both are built once in init and never modified.
var (
	functionList  []*function
	functionIndex map[string]*function
)

func init() {
	for _, group := range [][]*function{collectionFunctions(), lambdaFunctions(), logicFunctions(), stringFunctions(), deploymentFunctions(), resourceFunctions(), dateFunctions(), newerFunctions()} {
		functionList = append(functionList, group...)
	}
	functionIndex = make(map[string]*function, len(functionList))
	for _, f := range functionList {
		key := strings.ToLower(f.name)
		if functionIndex[key] != nil {
			panic("expr: function " + f.name + " defined twice")
		}
		functionIndex[key] = f
	}
}

func lookupFunction(name string) *function { return functionIndex[strings.ToLower(name)] }

// Functions lists the names of the library's functions (list* actions and
// user-defined functions aside), in canonical spelling.
func Functions() []string {
	names := make([]string, len(functionList))
	for i, f := range functionList {
		names[i] = f.name
	}
	slices.Sort(names)
	return names
}

// IsFunction reports whether name is a library function (case-insensitive),
// counting any list* name as the resource list action it is.
func IsFunction(name string) bool {
	return lookupFunction(name) != nil || len(name) >= 4 && strings.EqualFold(name[:4], "list")
}

// Argument helpers. Their messages name the argument by position; the call
// adds "Unable to evaluate template language function 'x'".

func ordinal(i int) string {
	switch i {
	case 0:
		return "first"
	case 1:
		return "second"
	case 2:
		return "third"
	}
	return fmt.Sprintf("%dth", i+1)
}

func argTypeError(args []any, i int, want string) error {
	return fmt.Errorf("the %s argument must be %s, but the value given is of type '%s'", ordinal(i), want, typeName(args[i]))
}

func argString(args []any, i int) (string, error) {
	if s, ok := args[i].(string); ok {
		return s, nil
	}
	return "", argTypeError(args, i, "a string")
}

func argInt(args []any, i int) (int64, error) {
	if n, ok := asInt(args[i]); ok {
		return n, nil
	}
	return 0, argTypeError(args, i, "an integer")
}

func argBool(args []any, i int) (bool, error) {
	if b, ok := args[i].(bool); ok {
		return b, nil
	}
	return false, argTypeError(args, i, "a boolean")
}

func argArray(args []any, i int) ([]any, error) {
	if a, ok := args[i].([]any); ok {
		return a, nil
	}
	return nil, argTypeError(args, i, "an array")
}

func argObject(args []any, i int) (map[string]any, error) {
	if m, ok := args[i].(map[string]any); ok {
		return m, nil
	}
	return nil, argTypeError(args, i, "an object")
}

func allStrings(args []any) ([]string, error) {
	out := make([]string, len(args))
	for i := range args {
		s, err := argString(args, i)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// fixed builds a function taking exactly n evaluated arguments.
func fixed(name string, n int, eval func(*Context, []any) (any, error)) *function {
	return &function{name: name, minArgs: n, maxArgs: n, eval: eval}
}

// ranged builds a function taking min to max evaluated arguments (max < 0:
// any number).
func ranged(name string, minArgs, maxArgs int, eval func(*Context, []any) (any, error)) *function {
	return &function{name: name, minArgs: minArgs, maxArgs: maxArgs, eval: eval}
}

// pure adapts a function that needs no context.
func pure(f func([]any) (any, error)) func(*Context, []any) (any, error) {
	return func(_ *Context, args []any) (any, error) { return f(args) }
}
