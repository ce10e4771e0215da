package expr

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// parseLenientJSON parses JSON the way ARM's json() and base64ToJson() do
// (Newtonsoft's reader): besides standard JSON it accepts single-quoted
// strings, unquoted property names, comments and trailing commas, so
// base64ToJson of "{'one': 'a'}" works. Integers become int64, other
// numbers float64; a repeated property keeps its last value.
func parseLenientJSON(s string) (any, error) {
	// .NET strings can't hold invalid UTF-8; a Go string can.
	p := &jsonParser{src: strings.ToValidUTF8(s, "\uFFFD")}
	p.skip()
	if p.pos >= len(p.src) {
		return nil, fmt.Errorf("the string is empty, not JSON; use null() for a null value")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skip()
	if p.pos < len(p.src) {
		return nil, p.errorf("unexpected text after the end of the JSON value")
	}
	return v, nil
}

// maxJSONDepth matches the nesting limit of Newtonsoft's defaults.
const maxJSONDepth = 64

type jsonParser struct {
	src string
	pos int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("the string is not valid JSON: %s at position %d", fmt.Sprintf(format, args...), utf8.RuneCountInString(p.src[:min(p.pos, len(p.src))]))
}

// skip passes whitespace and comments.
func (p *jsonParser) skip() {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		case strings.HasPrefix(p.src[p.pos:], "//"):
			if end := strings.IndexByte(p.src[p.pos:], '\n'); end >= 0 {
				p.pos += end + 1
			} else {
				p.pos = len(p.src)
			}
		case strings.HasPrefix(p.src[p.pos:], "/*"):
			if end := strings.Index(p.src[p.pos+2:], "*/"); end >= 0 {
				p.pos += end + 4
			} else {
				p.pos = len(p.src)
			}
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, p.errorf("nesting deeper than %d levels", maxJSONDepth)
	}
	p.skip()
	if p.pos >= len(p.src) {
		return nil, p.errorf("unexpected end of text")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"' || c == '\'':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case isIdentStart(c):
		word := p.ident()
		switch word {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "null", "undefined":
			return nil, nil
		}
		p.pos -= len(word)
		return nil, p.errorf("unexpected word '%s'", word)
	default:
		return nil, p.errorf("unexpected character '%c'", c)
	}
}

func (p *jsonParser) ident() string {
	start := p.pos
	for p.pos < len(p.src) && isIdentPart(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *jsonParser) object(depth int) (any, error) {
	p.pos++ // {
	out := map[string]any{}
	for {
		p.skip()
		if p.pos >= len(p.src) {
			return nil, p.errorf("the object has no closing '}'")
		}
		if p.src[p.pos] == '}' {
			p.pos++
			return out, nil
		}
		var key string
		switch c := p.src[p.pos]; {
		case c == '"' || c == '\'':
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			key = k.(string)
		case isIdentStart(c):
			key = p.ident()
		default:
			return nil, p.errorf("expected a property name, found '%c'", c)
		}
		p.skip()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return nil, p.errorf("expected ':' after the property name '%s'", key)
		}
		p.pos++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out[key] = v
		p.skip()
		if p.pos < len(p.src) && p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.src) && p.src[p.pos] == '}' {
			continue
		}
		return nil, p.errorf("expected ',' or '}' in the object")
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	p.pos++ // [
	out := []any{}
	for {
		p.skip()
		if p.pos >= len(p.src) {
			return nil, p.errorf("the array has no closing ']'")
		}
		if p.src[p.pos] == ']' {
			p.pos++
			return out, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.skip()
		if p.pos < len(p.src) && p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.src) && p.src[p.pos] == ']' {
			continue
		}
		return nil, p.errorf("expected ',' or ']' in the array")
	}
}

func (p *jsonParser) str() (any, error) {
	quote := p.src[p.pos]
	start := p.pos
	p.pos++
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == quote:
			p.pos++
			return b.String(), nil
		case c == '\\':
			if p.pos+1 >= len(p.src) {
				p.pos++
				continue
			}
			e := p.src[p.pos+1]
			p.pos += 2
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return nil, p.errorf("bad \\u escape")
				}
				if utf16.IsSurrogate(r) && strings.HasPrefix(p.src[p.pos:], `\u`) {
					p.pos += 2
					if r2, ok := p.hex4(); ok {
						r = utf16.DecodeRune(r, r2)
					}
				}
				b.WriteRune(r)
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	p.pos = start
	return nil, p.errorf("the string starting here has no closing quote")
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.pos+4 > len(p.src) {
		return 0, false
	}
	n, err := strconv.ParseUint(p.src[p.pos:p.pos+4], 16, 32)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return rune(n), true
}

func (p *jsonParser) number() (any, error) {
	start := p.pos
	if p.src[p.pos] == '-' {
		p.pos++
	}
	if strings.HasPrefix(p.src[p.pos:], "Infinity") {
		p.pos += len("Infinity")
		return nil, p.errorf("Infinity is not a JSON number ARM can hold")
	}
	isFloat := false
	for ; p.pos < len(p.src); p.pos++ {
		c := p.src[p.pos]
		if c >= '0' && c <= '9' {
			continue
		}
		exponentSign := (c == '+' || c == '-') && (p.src[p.pos-1] == 'e' || p.src[p.pos-1] == 'E')
		if c != '.' && c != 'e' && c != 'E' && !exponentSign {
			break
		}
		isFloat = true
	}
	text := p.src[start:p.pos]
	if !isFloat {
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		p.pos = start
		return nil, p.errorf("bad number '%s'", text)
	}
	return f, nil
}
