package sqlfilter

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxExpressionBytes bounds what Parse accepts (Service Bus allows 1024
// characters in a filter expression).
const MaxExpressionBytes = 1024

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokIdent
	tokString
	tokNumber
	tokOp     // = <> != < > <= >=
	tokLParen // (
	tokRParen // )
	tokComma
	tokKeyword // AND OR NOT IN LIKE ESCAPE IS NULL EXISTS TRUE FALSE
)

type token struct {
	kind tokenKind
	text string // identifier (unbracketed), string value, number text, operator, upper-cased keyword
	pos  int
}

var keywords = map[string]bool{
	"AND": true, "OR": true, "NOT": true, "IN": true, "LIKE": true, "ESCAPE": true,
	"IS": true, "NULL": true, "EXISTS": true, "TRUE": true, "FALSE": true,
}

// lex splits an expression into tokens.
func lex(src string) ([]token, error) {
	var out []token
	i := 0
	for i < len(src) {
		r, size := utf8.DecodeRuneInString(src[i:])
		switch {
		case unicode.IsSpace(r):
			i += size
		case r == '(':
			out = append(out, token{tokLParen, "(", i})
			i++
		case r == ')':
			out = append(out, token{tokRParen, ")", i})
			i++
		case r == ',':
			out = append(out, token{tokComma, ",", i})
			i++
		case r == '=':
			out = append(out, token{tokOp, "=", i})
			i++
		case r == '!':
			if strings.HasPrefix(src[i:], "!=") {
				out = append(out, token{tokOp, "<>", i})
				i += 2
				continue
			}
			return nil, fmt.Errorf("unexpected '!' at position %d: use '!=' or '<>'", i)
		case r == '<' || r == '>':
			op := string(r)
			if i+1 < len(src) && (src[i+1] == '=' || (r == '<' && src[i+1] == '>')) {
				op += string(src[i+1])
			}
			out = append(out, token{tokOp, op, i})
			i += len(op)
		case r == '\'':
			s, n, err := lexString(src[i:])
			if err != nil {
				return nil, fmt.Errorf("%w at position %d", err, i)
			}
			out = append(out, token{tokString, s, i})
			i += n
		case r == '[':
			end := strings.IndexByte(src[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated '[' at position %d: close the bracketed property name with ']'", i)
			}
			name := src[i+1 : i+end]
			if name == "" {
				return nil, fmt.Errorf("empty property name '[]' at position %d", i)
			}
			out = append(out, token{tokIdent, name, i})
			i += end + 1
		case r >= '0' && r <= '9' || (r == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9') ||
			(r == '-' && i+1 < len(src) && (src[i+1] >= '0' && src[i+1] <= '9' || src[i+1] == '.')):
			j := i + 1
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.' || src[j] == 'e' || src[j] == 'E' ||
				((src[j] == '+' || src[j] == '-') && (src[j-1] == 'e' || src[j-1] == 'E'))) {
				j++
			}
			out = append(out, token{tokNumber, src[i:j], i})
			i = j
		case r == '_' || r == '$' || unicode.IsLetter(r):
			j := i
			for j < len(src) {
				r2, s2 := utf8.DecodeRuneInString(src[j:])
				if r2 != '_' && r2 != '$' && r2 != '.' && r2 != '-' && !unicode.IsLetter(r2) && !unicode.IsDigit(r2) {
					break
				}
				j += s2
			}
			word := src[i:j]
			if up := strings.ToUpper(word); keywords[up] {
				out = append(out, token{tokKeyword, up, i})
			} else {
				out = append(out, token{tokIdent, word, i})
			}
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q at position %d", r, i)
		}
	}
	return append(out, token{tokEOF, "", len(src)}), nil
}

// lexString reads a single-quoted string where ” stands for one quote and
// returns its value and the number of bytes consumed.
func lexString(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), i + 1, nil
	}
	return "", 0, fmt.Errorf("unterminated string literal (strings are in single quotes; write '' for a quote inside)")
}
