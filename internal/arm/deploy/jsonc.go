package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/outpost-iot/outpost/internal/arm/deploy/expr"
)

// ParseLenient decodes JSON as ARM accepts template files: comments (// and
// /* */), trailing commas, and — because az 2.45 pastes the template file
// into its request body after an unquoted `template:` key — bare
// identifier keys. Numbers follow expr's value model (int64 when integral).
func ParseLenient(b []byte) (any, error) {
	clean := relax(b)
	dec := json.NewDecoder(bytes.NewReader(clean))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("not valid JSON: data after the document")
	}
	return expr.Normalize(v), nil
}

// relax rewrites the lenient forms into strict JSON, outside strings only.
func relax(b []byte) []byte {
	out := make([]byte, 0, len(b)+16)
	inString := false
	// expectKey is true after '{' or ',' (ignoring space): a bare
	// identifier there is an object key.
	expectKey := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out = append(out, c)
			switch c {
			case '\\':
				if i+1 < len(b) {
					i++
					out = append(out, b[i])
				}
			case '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString, expectKey = true, false
			out = append(out, c)
		case c == '/' && i+1 < len(b) && b[i+1] == '/':
			for i < len(b) && b[i] != '\n' {
				i++
			}
			out = append(out, '\n')
		case c == '/' && i+1 < len(b) && b[i+1] == '*':
			i += 2
			for i+1 < len(b) && !(b[i] == '*' && b[i+1] == '/') {
				i++
			}
			i++
			out = append(out, ' ')
		case c == ',':
			// Drop a trailing comma before } or ].
			j := i + 1
			for j < len(b) && isSpace(b[j]) {
				j++
			}
			if j < len(b) && (b[j] == '}' || b[j] == ']') {
				continue
			}
			out = append(out, c)
			expectKey = true
		case c == '{':
			out = append(out, c)
			expectKey = true
		case expectKey && isIdentStart(c):
			j := i
			for j < len(b) && isIdentPart(b[j]) {
				j++
			}
			k := j
			for k < len(b) && isSpace(b[k]) {
				k++
			}
			if k < len(b) && b[k] == ':' {
				out = append(out, '"')
				out = append(out, b[i:j]...)
				out = append(out, '"')
				i = j - 1
			} else {
				out = append(out, b[i:j]...)
				i = j - 1
			}
			expectKey = false
		default:
			if !isSpace(c) {
				expectKey = false
			}
			out = append(out, c)
		}
	}
	return out
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }
