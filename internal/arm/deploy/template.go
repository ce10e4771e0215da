package deploy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/deploy/expr"
)

var deploymentName = regexp.MustCompile(`^[-\w._()]+$`)

func newCorrelationID() string { return uuid.NewString() }

// lookup reads a member of a template object; template keys are
// case-insensitive in ARM.
func lookup(m map[string]any, key string) any {
	v, _ := expr.Lookup(m, key)
	return v
}

// lookupKey is lookup that also says whether the member is there.
func lookupKey(m map[string]any, key string) (any, bool) { return expr.Lookup(m, key) }

// checkTemplate validates what can be checked before deploying: the
// template's shape, that every expression parses, and that the supplied
// parameters match the declarations.
func checkTemplate(r request) error {
	switch lookup(r.Template, "resources").(type) {
	case []any:
	case map[string]any:
		// languageVersion 2.0: resources by symbolic name.
	default:
		return invalidTemplate("the template has no 'resources' array (or, with languageVersion 2.0, object of resources by symbolic name).")
	}
	decls, _ := lookup(r.Template, "parameters").(map[string]any)
	for name := range r.Parameters {
		if _, declared := lookupKey(decls, name); !declared {
			return arm.Errorf(http.StatusBadRequest, "InvalidTemplate",
				"Deployment template validation failed: 'The template parameters '%s' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are '%s'.'", name, strings.Join(keys(decls), ", "))
		}
	}
	for name, d := range decls {
		decl, _ := d.(map[string]any)
		if _, supplied := lookupKey(r.Parameters, name); !supplied && lookup(decl, "defaultValue") == nil {
			return arm.Errorf(http.StatusBadRequest, "InvalidTemplate",
				"Deployment template validation failed: 'The value for the template parameter '%s' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details.'", name)
		}
	}
	var errs []string
	walkStrings(r.Template, func(path, s string) {
		if expr.IsExpression(s) {
			if _, err := expr.Parse(s); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", path, err))
			}
		}
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return invalidTemplate("%s", strings.Join(errs, "; "))
	}
	return nil
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// walkStrings visits every string value and object key of a JSON value.
func walkStrings(v any, fn func(path, s string)) {
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch t := v.(type) {
		case string:
			fn(path, t)
		case []any:
			for i, x := range t {
				walk(x, fmt.Sprintf("%s[%d]", path, i))
			}
		case map[string]any:
			for k, x := range t {
				fn(path+"."+k+" (key)", k)
				walk(x, path+"."+k)
			}
		}
	}
	walk(v, "template")
}

func typeMatches(typ string, v any) bool {
	switch typ {
	case "string", "securestring":
		_, ok := v.(string)
		return ok
	case "int":
		_, ok := v.(int64)
		return ok
	case "bool":
		_, ok := v.(bool)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "object", "secureobject":
		_, ok := v.(map[string]any)
		return ok
	}
	return true
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "String"
	case int64, float64:
		return "Integer"
	case bool:
		return "Boolean"
	case []any:
		return "Array"
	case map[string]any:
		return "Object"
	}
	return "Null"
}

func joinAny(xs []any) string {
	var s []string
	for _, x := range xs {
		if str, ok := x.(string); ok {
			s = append(s, str)
			continue
		}
		b, _ := json.Marshal(x)
		s = append(s, string(b))
	}
	return strings.Join(s, ",")
}

// copyCount reads a copy loop's count: an integer from 0 to 800, or a
// string holding one (the docs' own examples write "count": "3").
func copyCount(v any) (int, bool) {
	var n int64
	switch t := v.(type) {
	case int64:
		n = t
	case string:
		parsed, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		if err != nil {
			return 0, false
		}
		n = parsed
	default:
		return 0, false
	}
	if n < 0 || n > 800 {
		return 0, false
	}
	return int(n), true
}

// evalString evaluates one template string at a site.
func evalString(v any, ctx *expr.Context, what string) (string, error) {
	out, err := expr.EvalValue(v, ctx)
	if err != nil {
		return "", invalidTemplate("%s: %v", what, err)
	}
	s, ok := out.(string)
	if !ok {
		return "", invalidTemplate("%s must be a string, got %v.", what, out)
	}
	return s, nil
}
