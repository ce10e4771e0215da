package expr

import (
	"errors"
	"fmt"
	"strings"
	"sync"
)

// LazyValues evaluates a template's variables, or its parameters' default
// values, the first time an expression asks for one, and remembers the
// result. A definition that (directly or through others) asks for itself is
// reported as a cycle instead of recursing forever. Safe for concurrent use.
type LazyValues struct {
	kind     string // "variable" or "parameter", for messages
	site     Site
	supplied map[string]any // final values that are never evaluated
	defs     map[string]any // definitions, evaluated on first use
	copies   map[string]map[string]any

	mu   sync.Mutex
	done map[string]any // by lower-case name
}

// NewVariables serves a template's variables section. A top-level "copy"
// array defines array variables ({"name", "count", "input"}), whose input
// reads copyIndex('name').
func NewVariables(section map[string]any) *LazyValues {
	l := &LazyValues{kind: "variable", site: SiteVariables, defs: map[string]any{}, copies: map[string]map[string]any{}, done: map[string]any{}}
	for k, v := range section {
		if strings.EqualFold(k, "copy") {
			if loops, ok := copyLoops(v); ok {
				for _, loop := range loops {
					name, _ := loop["name"].(string)
					l.copies[name] = loop
				}
				continue
			}
		}
		l.defs[k] = v
	}
	return l
}

// NewParameters serves a template's parameters: supplied values as given
// (they are never evaluated: a supplied "[x]" is a string), otherwise the
// declaration's defaultValue, evaluated on first use where utcNow() and
// newGuid() are allowed. declarations is the template's parameters section.
func NewParameters(declarations, supplied map[string]any) *LazyValues {
	l := &LazyValues{kind: "parameter", site: SiteParameterDefault, supplied: map[string]any{}, defs: map[string]any{}, done: map[string]any{}}
	for name, decl := range declarations {
		if v, ok := lookupProperty(supplied, name); ok {
			l.supplied[name] = v
			continue
		}
		d, _ := decl.(map[string]any)
		if def, ok := lookupProperty(d, "defaultValue"); ok {
			l.defs[name] = def
		} else {
			l.defs[name] = missingValue{}
		}
	}
	return l
}

// cycleError is a definition that refers to itself.
type cycleError struct{ msg string }

func (e *cycleError) Error() string { return e.msg }

// missingValue marks a declared parameter that has neither a value nor a
// default.
type missingValue struct{}

func (l *LazyValues) names() []string {
	var out []string
	for _, m := range []map[string]any{l.supplied, l.defs} {
		out = append(out, mapKeys(m)...)
	}
	for k := range l.copies {
		out = append(out, k)
	}
	return out
}

// Value implements Values.
func (l *LazyValues) Value(ctx *Context, name string) (any, error) {
	if v, ok := lookupProperty(l.supplied, name); ok {
		return v, nil
	}
	key := strings.ToLower(name)
	l.mu.Lock()
	v, ok := l.done[key]
	l.mu.Unlock()
	if ok {
		return v, nil
	}
	canonical, def, isCopy, found := l.definition(name)
	if !found {
		return nil, &NotFoundError{Name: name, Known: l.names()}
	}
	if _, missing := def.(missingValue); missing {
		return nil, &EvalError{standalone: true, Err: fmt.Errorf("The value for the template parameter '%s' is not provided.", canonical)}
	}
	ctx = ctx.begin()
	if chain := l.cycle(ctx, canonical); chain != "" {
		return nil, &EvalError{standalone: true, Err: &cycleError{fmt.Sprintf("The template %s '%s' is not valid: it refers to itself through %s", l.kind, canonical, chain)}}
	}
	rctx := ctx.root(l.site)
	rctx.resolving = &resolvingFrame{kind: l.kind, name: canonical, owner: l, parent: ctx.resolving}
	var err error
	if isCopy {
		v, err = evalCopyLoop(def.(map[string]any), rctx, "")
	} else {
		v, err = evalValue(def, rctx, "")
	}
	if err != nil {
		// A cycle is reported once, not once per member.
		var ce *cycleError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, &EvalError{standalone: true, Err: fmt.Errorf("The template %s '%s' is not valid: %w", l.kind, canonical, err)}
	}
	l.mu.Lock()
	l.done[key] = v
	l.mu.Unlock()
	return v, nil
}

func (l *LazyValues) definition(name string) (canonical string, def any, isCopy, ok bool) {
	for k, v := range l.defs {
		if strings.EqualFold(k, name) {
			return k, v, false, true
		}
	}
	for k, v := range l.copies {
		if strings.EqualFold(k, name) {
			return k, v, true, true
		}
	}
	return "", nil, false, false
}

// cycle returns "a -> b -> a" when name is already being evaluated by this
// LazyValues further up the context chain.
func (l *LazyValues) cycle(ctx *Context, name string) string {
	var chain []string
	for f := ctx.resolving; f != nil; f = f.parent {
		if f.owner != l {
			continue
		}
		chain = append(chain, f.name)
		if strings.EqualFold(f.name, name) {
			var b strings.Builder
			for i := len(chain) - 1; i >= 0; i-- {
				b.WriteString(chain[i] + " -> ")
			}
			b.WriteString(name)
			return b.String()
		}
	}
	return ""
}

// EvalValue evaluates a JSON template value: every string (and object key)
// that is an expression, recursively. An object's "copy" array of
// {"name", "count", "input"} entries is expanded into array properties, as
// ARM does for property and variable copy loops.
func EvalValue(v any, ctx *Context) (any, error) {
	return evalValue(v, ctx.begin(), "")
}

func evalValue(v any, ctx *Context, path string) (any, error) {
	switch t := v.(type) {
	case string:
		if !IsExpression(t) {
			return Unescape(t), nil
		}
		e, err := Parse(t)
		if err == nil {
			var res any
			if res, err = e.eval(ctx); err == nil {
				return res, nil
			}
		}
		if path != "" {
			err = fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			r, err := evalValue(e, ctx, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if strings.EqualFold(k, "copy") {
				if loops, ok := copyLoops(e); ok {
					for _, loop := range loops {
						name, _ := loop["name"].(string)
						r, err := evalCopyLoop(loop, ctx, join(path, name))
						if err != nil {
							return nil, err
						}
						out[name] = r
					}
					continue
				}
			}
			key := k
			if IsExpression(k) {
				kv, err := evalValue(k, ctx, path)
				if err != nil {
					return nil, err
				}
				s, ok := kv.(string)
				if !ok {
					return nil, fmt.Errorf("%s: the property name expression %s evaluated to a value of type '%s', not a string", path, k, typeName(kv))
				}
				key = s
			} else {
				key = Unescape(k)
			}
			r, err := evalValue(e, ctx, join(path, key))
			if err != nil {
				return nil, err
			}
			out[key] = r
		}
		return out, nil
	}
	return Normalize(v), nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// copyLoops recognises a property or variable copy array: every entry an
// object with name, count and input.
func copyLoops(v any) ([]map[string]any, bool) {
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return nil, false
	}
	loops := make([]map[string]any, 0, len(arr))
	for _, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, false
		}
		loop := map[string]any{}
		for _, f := range []string{"name", "count", "input"} {
			x, ok := lookupProperty(m, f)
			if !ok {
				return nil, false
			}
			loop[f] = x
		}
		if _, ok := loop["name"].(string); !ok {
			return nil, false
		}
		loops = append(loops, loop)
	}
	return loops, true
}

// MaxCopyCount is ARM's limit on a copy loop's count.
const MaxCopyCount = 800

func evalCopyLoop(loop map[string]any, ctx *Context, path string) (any, error) {
	name := loop["name"].(string)
	cv, err := evalValue(loop["count"], ctx, join(path, "count"))
	if err != nil {
		return nil, err
	}
	count, ok := asInt(cv)
	if !ok || count < 0 || count > MaxCopyCount {
		return nil, fmt.Errorf("%s: the copy loop '%s' has count %s; it must be an integer from 0 to %d", join(path, "count"), name, jsonText(cv), MaxCopyCount)
	}
	out := make([]any, count)
	for i := range int(count) {
		r, err := evalValue(loop["input"], ctx.WithCopyIndex(name, i), fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}
