package expr

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Array and object functions (template-functions-array.md, -object.md, and
// the newer ones Bicep compiles to: objectKeys, shallowMerge, tryGet,
// indexFromEnd, tryIndexFromEnd, flatten).
func collectionFunctions() []*function {
	return []*function{
		fixed("array", 1, pure(fnArray)),
		ranged("concat", 1, -1, pure(fnConcat)),
		fixed("contains", 2, pure(fnContains)),
		ranged("createArray", 0, -1, pure(func(args []any) (any, error) { return append([]any{}, args...), nil })),
		ranged("createObject", 0, -1, pure(fnCreateObject)),
		fixed("empty", 1, pure(fnEmpty)),
		fixed("first", 1, pure(func(args []any) (any, error) { return firstOrLast(args, true) })),
		fixed("last", 1, pure(func(args []any) (any, error) { return firstOrLast(args, false) })),
		fixed("indexOf", 2, pure(func(args []any) (any, error) { return indexOf(args, false) })),
		fixed("lastIndexOf", 2, pure(func(args []any) (any, error) { return indexOf(args, true) })),
		ranged("intersection", 2, -1, pure(fnIntersection)),
		ranged("union", 1, -1, pure(fnUnion)),
		fixed("json", 1, pure(fnJSON)),
		fixed("length", 1, pure(fnLength)),
		ranged("min", 1, -1, pure(func(args []any) (any, error) { return minMax(args, -1) })),
		ranged("max", 1, -1, pure(func(args []any) (any, error) { return minMax(args, 1) })),
		fixed("range", 2, pure(fnRange)),
		fixed("skip", 2, pure(func(args []any) (any, error) { return takeSkip(args, false) })),
		fixed("take", 2, pure(func(args []any) (any, error) { return takeSkip(args, true) })),
		fixed("items", 1, pure(fnItems)),
		fixed("objectKeys", 1, pure(fnObjectKeys)),
		fixed("shallowMerge", 1, pure(fnShallowMerge)),
		fixed("null", 0, pure(func([]any) (any, error) { return nil, nil })),
		ranged("tryGet", 2, -1, pure(fnTryGet)),
		fixed("indexFromEnd", 2, pure(func(args []any) (any, error) { return fromEnd(args, false) })),
		fixed("tryIndexFromEnd", 2, pure(func(args []any) (any, error) { return fromEnd(args, true) })),
		fixed("flatten", 1, pure(fnFlatten)),
		fixed("join", 2, pure(fnJoin)),
	}
}

func fnArray(args []any) (any, error) {
	if a, ok := args[0].([]any); ok {
		return a, nil
	}
	return []any{args[0]}, nil
}

// fnConcat joins arrays into an array, or anything else into a string
// (numbers and booleans as text, nulls skipped); arrays and strings can't be
// mixed.
func fnConcat(args []any) (any, error) {
	arrays := false
	for _, a := range args {
		if _, ok := a.([]any); ok {
			arrays = true
			break
		}
	}
	if arrays {
		var out []any
		for i, a := range args {
			switch t := a.(type) {
			case []any:
				out = append(out, t...)
			case nil:
			default:
				return nil, fmt.Errorf("the arguments must be all arrays or all strings; the %s is of type '%s' while others are arrays", ordinal(i)+" argument", typeName(a))
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	}
	var b strings.Builder
	for i, a := range args {
		switch a.(type) {
		case map[string]any:
			return nil, fmt.Errorf("the arguments must be all arrays or all strings; the %s argument is an object (use union() to merge objects)", ordinal(i))
		}
		b.WriteString(stringify(a))
	}
	return b.String(), nil
}

func fnContains(args []any) (any, error) {
	item := args[1]
	switch c := args[0].(type) {
	case string:
		switch item.(type) {
		case []any, map[string]any:
			return false, nil
		}
		return strings.Contains(c, stringify(item)), nil
	case []any:
		for _, e := range c {
			if deepEqual(e, item) {
				return true, nil
			}
		}
		return false, nil
	case map[string]any:
		key, ok := item.(string)
		if !ok {
			return false, nil
		}
		_, found := lookupProperty(c, key)
		return found, nil
	}
	return nil, argTypeError(args, 0, "an array, an object or a string")
}

func fnCreateObject(args []any) (any, error) {
	if len(args)%2 != 0 {
		return nil, fmt.Errorf("the arguments must come in key, value pairs, but %d were given", len(args))
	}
	out := make(map[string]any, len(args)/2)
	for i := 0; i < len(args); i += 2 {
		key, err := argString(args, i)
		if err != nil {
			return nil, err
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("the key '%s' is given twice", key)
		}
		out[key] = args[i+1]
	}
	return out, nil
}

func fnEmpty(args []any) (any, error) {
	switch t := args[0].(type) {
	case nil:
		return true, nil
	case string:
		return t == "", nil
	case []any:
		return len(t) == 0, nil
	case map[string]any:
		return len(t) == 0, nil
	}
	return nil, argTypeError(args, 0, "an array, an object or a string")
}

func firstOrLast(args []any, first bool) (any, error) {
	switch t := args[0].(type) {
	case nil:
		return nil, nil
	case []any:
		if len(t) == 0 {
			return nil, nil
		}
		if first {
			return t[0], nil
		}
		return t[len(t)-1], nil
	case string:
		if t == "" {
			return "", nil
		}
		n := utf16Len(t)
		if first {
			return utf16Slice(t, 0, 1), nil
		}
		return utf16Slice(t, n-1, n), nil
	}
	return nil, argTypeError(args, 0, "an array or a string")
}

// indexOf finds an item in an array (JSON equality) or a substring in a
// string, ignoring case as ARM documents; -1 when absent.
func indexOf(args []any, last bool) (any, error) {
	switch t := args[0].(type) {
	case []any:
		for i := range t {
			j := i
			if last {
				j = len(t) - 1 - i
			}
			if deepEqual(t[j], args[1]) {
				return int64(j), nil
			}
		}
		return int64(-1), nil
	case string:
		needle, err := argString(args, 1)
		if err != nil {
			return nil, err
		}
		return int64(foldIndex(t, needle, last)), nil
	}
	return nil, argTypeError(args, 0, "an array or a string")
}

// foldIndex is a case-insensitive IndexOf/LastIndexOf returning a UTF-16
// offset.
func foldIndex(s, sub string, last bool) int {
	hay, needle := []rune(s), []rune(sub)
	if len(needle) > len(hay) {
		return -1
	}
	match := func(at int) bool {
		for k, r := range needle {
			if !equalFoldRune(hay[at+k], r) {
				return false
			}
		}
		return true
	}
	if last {
		for i := len(hay) - len(needle); i >= 0; i-- {
			if match(i) {
				return utf16Index(hay, i)
			}
		}
		return -1
	}
	for i := 0; i+len(needle) <= len(hay); i++ {
		if match(i) {
			return utf16Index(hay, i)
		}
	}
	return -1
}

func equalFoldRune(a, b rune) bool {
	return a == b || strings.EqualFold(string(a), string(b))
}

func fnIntersection(args []any) (any, error) {
	switch first := args[0].(type) {
	case []any:
		rest := make([][]any, 0, len(args)-1)
		for i := 1; i < len(args); i++ {
			a, err := argArray(args, i)
			if err != nil {
				return nil, err
			}
			rest = append(rest, a)
		}
		out := []any{}
	next:
		for _, e := range first {
			for _, seen := range out {
				if deepEqual(seen, e) {
					continue next
				}
			}
			for _, other := range rest {
				if !containsValue(other, e) {
					continue next
				}
			}
			out = append(out, e)
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		for k, v := range first {
			out[k] = v
		}
		for i := 1; i < len(args); i++ {
			o, err := argObject(args, i)
			if err != nil {
				return nil, err
			}
			for k, v := range out {
				if ov, ok := o[k]; !ok || !deepEqual(ov, v) {
					delete(out, k)
				}
			}
		}
		return out, nil
	}
	return nil, argTypeError(args, 0, "an array or an object")
}

func containsValue(arr []any, v any) bool {
	for _, e := range arr {
		if deepEqual(e, v) {
			return true
		}
	}
	return false
}

// fnUnion merges arrays (distinct values, first occurrence kept) or objects
// (later values win; nested objects merge recursively, nested arrays are
// replaced, as template-functions-object.md shows).
func fnUnion(args []any) (any, error) {
	switch args[0].(type) {
	case []any:
		out := []any{}
		for i := range args {
			a, err := argArray(args, i)
			if err != nil {
				return nil, err
			}
			for _, e := range a {
				if !containsValue(out, e) {
					out = append(out, e)
				}
			}
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		for i := range args {
			o, err := argObject(args, i)
			if err != nil {
				return nil, err
			}
			mergeInto(out, o)
		}
		return out, nil
	}
	return nil, argTypeError(args, 0, "an array or an object")
}

func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				merged := make(map[string]any, len(dv)+len(sv))
				for dk, dvv := range dv {
					merged[dk] = dvv
				}
				mergeInto(merged, sv)
				dst[k] = merged
				continue
			}
		}
		dst[k] = v
	}
}

func fnJSON(args []any) (any, error) {
	if args[0] == nil {
		return map[string]any{}, nil
	}
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	return parseLenientJSON(s)
}

func fnLength(args []any) (any, error) {
	switch t := args[0].(type) {
	case nil:
		return int64(0), nil
	case string:
		return int64(utf16Len(t)), nil
	case []any:
		return int64(len(t)), nil
	case map[string]any:
		return int64(len(t)), nil
	}
	return nil, argTypeError(args, 0, "an array, an object or a string")
}

// minMax takes integers, or arrays of them (floats too, as Azure Policy's
// port of the evaluator does); sign -1 is min, 1 is max.
func minMax(args []any, sign int) (any, error) {
	var values []any
	for i, a := range args {
		if arr, ok := a.([]any); ok {
			values = append(values, arr...)
			continue
		}
		if _, ok := asFloat(a); !ok {
			return nil, argTypeError(args, i, "an integer or an array of integers")
		}
		values = append(values, a)
	}
	if len(values) == 0 {
		return nil, errors.New("there are no values to compare: the array is empty")
	}
	var best any
	var bestF float64
	for _, v := range values {
		f, ok := asFloat(v)
		if !ok {
			return nil, fmt.Errorf("the arrays must hold only numbers, but one holds a value of type '%s'", typeName(v))
		}
		if best == nil || sign < 0 && f < bestF || sign > 0 && f > bestF {
			best, bestF = v, f
		}
	}
	return best, nil
}

func fnRange(args []any) (any, error) {
	start, err := argInt(args, 0)
	if err != nil {
		return nil, err
	}
	count, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	if count < 0 || count > 10000 {
		return nil, fmt.Errorf("the count %d must be from 0 to 10000", count)
	}
	if start+count-1 > math.MaxInt32 {
		return nil, fmt.Errorf("the sum of startIndex and count must not exceed %d", int64(math.MaxInt32)+1)
	}
	out := make([]any, count)
	for i := range out {
		out[i] = start + int64(i)
	}
	return out, nil
}

// takeSkip takes or skips n elements or UTF-16 characters; n <= 0 takes
// none or skips none, n past the end takes all or skips all.
func takeSkip(args []any, take bool) (any, error) {
	n, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	clamp := func(length int) int { return int(max(0, min(n, int64(length)))) }
	switch t := args[0].(type) {
	case []any:
		k := clamp(len(t))
		if take {
			return append([]any{}, t[:k]...), nil
		}
		return append([]any{}, t[k:]...), nil
	case string:
		length := utf16Len(t)
		k := clamp(length)
		if take {
			return utf16Slice(t, 0, k), nil
		}
		return utf16Slice(t, k, length), nil
	case nil:
		return nil, nil
	}
	return nil, argTypeError(args, 0, "an array or a string")
}

func fnItems(args []any) (any, error) {
	obj, err := argObject(args, 0)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(obj))
	for _, k := range sortedKeys(obj) {
		out = append(out, map[string]any{"key": k, "value": obj[k]})
	}
	return out, nil
}

func fnObjectKeys(args []any) (any, error) {
	obj, err := argObject(args, 0)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(obj))
	for _, k := range sortedKeys(obj) {
		out = append(out, k)
	}
	return out, nil
}

func fnShallowMerge(args []any) (any, error) {
	arr, err := argArray(args, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for i, e := range arr {
		if e == nil {
			continue
		}
		o, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("element %d of the array is of type '%s'; shallowMerge merges objects", i, typeName(e))
		}
		for k, v := range o {
			out[k] = v
		}
	}
	return out, nil
}

// fnTryGet follows keys (property names or indexes) and returns null as
// soon as one is missing: what Bicep's a.?b and a[?0] compile to.
func fnTryGet(args []any) (any, error) {
	cur := args[0]
	for i, key := range args[1:] {
		switch c := cur.(type) {
		case nil:
			return nil, nil
		case map[string]any:
			k, ok := key.(string)
			if !ok {
				return nil, argTypeError(args, i+1, "a property name (string) to read an object")
			}
			v, found := lookupProperty(c, k)
			if !found {
				return nil, nil
			}
			cur = v
		case []any:
			n, ok := asInt(key)
			if !ok {
				return nil, argTypeError(args, i+1, "an index (integer) to read an array")
			}
			if n < 0 || n >= int64(len(c)) {
				return nil, nil
			}
			cur = c[n]
		default:
			return nil, fmt.Errorf("can't read '%s' from a value of type '%s'", stringify(key), typeName(cur))
		}
	}
	return cur, nil
}

func fromEnd(args []any, try bool) (any, error) {
	if args[0] == nil && try {
		return nil, nil
	}
	arr, err := argArray(args, 0)
	if err != nil {
		return nil, err
	}
	n, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	if n < 1 || n > int64(len(arr)) {
		if try {
			return nil, nil
		}
		return nil, fmt.Errorf("the index from the end %d is out of bounds for an array of %d element%s", n, len(arr), plural(len(arr), "", "s"))
	}
	return arr[int64(len(arr))-n], nil
}

func fnFlatten(args []any) (any, error) {
	arr, err := argArray(args, 0)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for i, e := range arr {
		inner, ok := e.([]any)
		if !ok {
			return nil, fmt.Errorf("element %d of the array is of type '%s'; flatten needs an array of arrays", i, typeName(e))
		}
		out = append(out, inner...)
	}
	return out, nil
}

func fnJoin(args []any) (any, error) {
	arr, err := argArray(args, 0)
	if err != nil {
		return nil, err
	}
	delim, err := argString(args, 1)
	if err != nil {
		return nil, err
	}
	parts := make([]string, len(arr))
	for i, e := range arr {
		switch e.(type) {
		case []any, map[string]any:
			return nil, fmt.Errorf("element %d of the array is of type '%s'; join needs strings", i, typeName(e))
		}
		parts[i] = stringify(e)
	}
	return strings.Join(parts, delim), nil
}
