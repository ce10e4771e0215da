// Package expr is the ARM template expression language: the "[...]"
// strings in a template, such as
//
//	"[concat(parameters('iotHubName'), '-', uniqueString(resourceGroup().id))]"
//
// The pipeline:
//
//	template string ──IsExpression?──no──▶ literal ("[[x]" unescapes to "[x]")
//	      │ yes
//	      ▼
//	Parse: lexer (single-quoted strings with '' escapes, integers, names,
//	       ( ) [ ] , .) → recursive-descent parser → Expr tree of
//	       *StringLit, *IntLit, *Call, *Member (.name), *Index ([expr]).
//	       Function names are resolved against the library here,
//	       case-insensitively, and argument counts and lambda placement are
//	       checked, so mistakes fail with a position before anything runs.
//	      │
//	      ▼
//	Eval(ctx): walks the tree. Most functions get evaluated arguments; if,
//	       and, or, coalesce and the lambda functions (filter, map, reduce,
//	       sort, toObject, mapValues, groupBy) evaluate their own, so only
//	       the branch if() picks runs and a lambda body runs per element.
//	       The Context supplies everything outside the expression:
//	       parameters and variables (LazyValues evaluates them on demand
//	       and reports cycles), the deployment, tenant, subscription,
//	       resource group and management group, environment() endpoints,
//	       and hooks into the deployment engine for reference(), list*(),
//	       user-defined functions and pickZones(). Context.Site says where
//	       the expression sits, which decides whether utcNow(), newGuid(),
//	       variables(), reference() and list*() are allowed.
//
// EvalString does both steps for one template string; EvalValue walks a
// whole JSON value (evaluating object keys too and expanding property copy
// loops).
//
// Values are plain Go JSON values: string, int64, float64, bool, nil,
// []any and map[string]any. ARM integers are 64-bit, so every integer is an
// int64; float64 only comes from json(), float() or a fractional JSON
// number. Normalize converts encoding/json output into this model.
//
// Behaviour follows the ARM documentation (template-functions-*.md) and,
// where it is silent, the Bicep evaluation tests (which run Microsoft's own
// evaluator) and Microsoft's Azure Policy port of it. uniqueString() and
// guid() reproduce Azure's algorithms bit for bit (see hash.go). Errors use
// ARM's wording where known ("Unable to evaluate template language function
// 'substring': …", "The template function 'reference' is not expected at
// this location").
//
// Evaluation is bounded: nesting depth at parse time, and a budget of work
// per evaluation, so a hostile template can't exhaust memory with, say, a
// reduce() that doubles a string.
package expr
