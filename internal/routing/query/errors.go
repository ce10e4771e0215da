package query

import (
	"fmt"
	"strings"

	"github.com/outpost-iot/outpost/internal/textdist"
)

// Position is a place in a condition. Line and Column are 1-based; Column
// counts Unicode code points (IoT Hub counts UTF-16 units, which is the same
// for every character outside the astral planes).
type Position struct {
	Line, Column int
}

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Column) }

// Error is one problem found while compiling a condition. Msg uses IoT Hub's
// wording where IoT Hub has one ("Syntax error: invalid symbol '@'") so that
// the route test API can return it unchanged; Hint says what to do about it.
type Error struct {
	Start Position // first character of the offending token
	End   Position // just past it (exclusive), as in IoT Hub's compilationErrors
	Msg   string
	Hint  string
}

func (e *Error) Error() string {
	s := e.Msg + " at " + e.Start.String()
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// ErrorList is every problem Compile found, in source order. Syntax errors
// stop compilation, so a list holds at most one of them; type errors are all
// reported at once.
type ErrorList []*Error

func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	return fmt.Sprintf("%s (and %d more errors)", l[0].Error(), len(l)-1)
}

// Unwrap lets errors.As find the individual *Error values.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

func errorAt(t token, msg, hint string) *Error {
	return &Error{Start: t.start, End: t.end, Msg: msg, Hint: hint}
}

// suggestFunction proposes a built-in for a misspelt or foreign function
// name: the same letters without underscores (STARTSWITH), a common name
// from another SQL dialect (LEN), or a name within two edits (LENTGH).
func suggestFunction(name string) string {
	lower := strings.ToLower(name)
	if hint, ok := foreignFunctions[lower]; ok {
		return hint
	}
	squash := strings.ReplaceAll(lower, "_", "")
	best, bestDist := "", 3
	for _, b := range builtins {
		if strings.ReplaceAll(b.name, "_", "") == squash {
			return "did you mean " + strings.ToUpper(b.name) + "?"
		}
		if d := textdist.Levenshtein(lower, b.name); d < bestDist || (d == bestDist && b.name < best) {
			best, bestDist = b.name, d
		}
	}
	if best != "" {
		return "did you mean " + strings.ToUpper(best) + "?"
	}
	return "the built-in functions are " + builtinNames()
}

// foreignFunctions answers for names people bring from other query
// languages. IoT Hub routing has no trim, logarithm or date functions.
var foreignFunctions = map[string]string{
	"len":       "did you mean LENGTH?",
	"substr":    "did you mean SUBSTRING?",
	"lcase":     "did you mean LOWER?",
	"ucase":     "did you mean UPPER?",
	"tolower":   "did you mean LOWER?",
	"toupper":   "did you mean UPPER?",
	"pow":       "did you mean POWER?",
	"ceil":      "did you mean CEILING?",
	"strpos":    "did you mean INDEX_OF?",
	"ltrim":     "IoT Hub routing queries have no trim functions",
	"rtrim":     "IoT Hub routing queries have no trim functions",
	"trim":      "IoT Hub routing queries have no trim functions",
	"log":       "IoT Hub routing queries have no logarithm functions",
	"log10":     "IoT Hub routing queries have no logarithm functions",
	"round":     "IoT Hub routing queries have no ROUND; use FLOOR or CEILING",
	"trunc":     "IoT Hub routing queries have no TRUNC; use FLOOR or CEILING",
	"is_empty":  "compare with LENGTH(x) = 0",
	"to_string": "IoT Hub routing queries cannot convert values to strings",
}

func builtinNames() string {
	names := make([]string, 0, len(builtins))
	for _, b := range builtinOrder {
		names = append(names, strings.ToUpper(b))
	}
	return strings.Join(names, ", ")
}
