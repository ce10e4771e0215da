package query

import (
	"bytes"
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth is how deeply a body or twin may nest objects and arrays.
// Bodies nested deeper are not queryable, as in IoT Edge, whose Json.NET
// 13 reader stops at its default MaxDepth of 64.
const maxJSONDepth = 64

// pathSegment is one step of a $body or $twin path: a property name,
// optionally followed by an array index.
type pathSegment struct {
	name  []byte
	index int // -1 when the segment has no [n]
}

// jsonNode is one entry of a parsed document's tape. Objects are followed
// by their members as (key, value) pairs, arrays by their elements; next
// is the index just past a node's subtree, so lookups skip whole subtrees.
// Scalars keep only their byte range and are decoded when read, because a
// route usually reads one or two fields of a body it parses whole.
type jsonNode struct {
	kind       kind
	escaped    bool // string with backslash escapes
	truth      bool // value of a Boolean
	start, end uint32
	next       uint32
}

// jsonDoc is a parsed JSON document. Its slices are reused from message to
// message.
type jsonDoc struct {
	src   []byte
	nodes []jsonNode
	stack []uint32
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (d *jsonDoc) skipSpace(i int) int {
	for i < len(d.src) && isJSONSpace(d.src[i]) {
		i++
	}
	return i
}

// parse validates d.src as RFC 8259 JSON whose root is an object (IoT Hub
// only queries object bodies) and builds the tape. It is iterative, so a
// hostile body cannot exhaust the stack.
func (d *jsonDoc) parse() bool {
	d.nodes, d.stack = d.nodes[:0], d.stack[:0]
	s := d.src
	if int64(len(s)) > math.MaxUint32 {
		return false // offsets are 32-bit; IoT Hub messages are at most 256 KiB
	}
	i := 0
	if bytes.HasPrefix(s, []byte("\xEF\xBB\xBF")) {
		i = 3 // a byte order mark is not JSON, but devices send it
	}
	i = d.skipSpace(i)
	if i >= len(s) || s[i] != '{' {
		return false
	}
	expectKey := false // whether the next value is preceded by "key":
	for {
		if expectKey {
			var ok bool
			if i, ok = d.member(i); !ok {
				return false
			}
		}
		i = d.skipSpace(i)
		if i >= len(s) {
			return false
		}
		idx := uint32(len(d.nodes))
		switch c := s[i]; {
		case c == '{' || c == '[':
			if len(d.stack) >= maxJSONDepth {
				return false
			}
			k := kindObject
			if c == '[' {
				k = kindArray
			}
			d.nodes = append(d.nodes, jsonNode{kind: k, start: uint32(i)})
			d.stack = append(d.stack, idx)
			i = d.skipSpace(i + 1)
			if i < len(s) && (s[i] == '}' && k == kindObject || s[i] == ']' && k == kindArray) {
				i++
				d.close()
				break
			}
			expectKey = k == kindObject
			continue
		case c == '"':
			end, esc, ok := scanJSONString(s, i)
			if !ok {
				return false
			}
			d.nodes = append(d.nodes, jsonNode{kind: kindString, escaped: esc, start: uint32(i + 1), end: uint32(end - 1), next: idx + 1})
			i = end
		case c == 't' || c == 'f' || c == 'n':
			lit, k := "null", kindNull
			if c == 't' {
				lit, k = "true", kindBool
			} else if c == 'f' {
				lit, k = "false", kindBool
			}
			if !bytes.HasPrefix(s[i:], []byte(lit)) {
				return false
			}
			d.nodes = append(d.nodes, jsonNode{kind: k, truth: c == 't', start: uint32(i), end: uint32(i + len(lit)), next: idx + 1})
			i += len(lit)
		default:
			end := scanJSONNumber(s, i)
			if end == i {
				return false
			}
			d.nodes = append(d.nodes, jsonNode{kind: kindNumber, start: uint32(i), end: uint32(end), next: idx + 1})
			i = end
		}
		// After a value: close containers or move to the next sibling.
		for {
			if len(d.stack) == 0 {
				return d.skipSpace(i) == len(s)
			}
			i = d.skipSpace(i)
			if i >= len(s) {
				return false
			}
			top := d.nodes[d.stack[len(d.stack)-1]].kind
			if s[i] == ',' {
				i++
				expectKey = top == kindObject
				break
			}
			if s[i] == '}' && top == kindObject || s[i] == ']' && top == kindArray {
				i++
				d.close()
				continue
			}
			return false
		}
	}
}

// member parses `"key" :` and appends the key node.
func (d *jsonDoc) member(i int) (int, bool) {
	s := d.src
	i = d.skipSpace(i)
	if i >= len(s) || s[i] != '"' {
		return i, false
	}
	end, esc, ok := scanJSONString(s, i)
	if !ok {
		return i, false
	}
	idx := uint32(len(d.nodes))
	d.nodes = append(d.nodes, jsonNode{kind: kindString, escaped: esc, start: uint32(i + 1), end: uint32(end - 1), next: idx + 1})
	i = d.skipSpace(end)
	if i >= len(s) || s[i] != ':' {
		return i, false
	}
	return i + 1, true
}

func (d *jsonDoc) close() {
	top := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	d.nodes[top].next = uint32(len(d.nodes))
}

// scanJSONString checks the string starting at the quote s[i] and returns
// the offset just past its closing quote.
func scanJSONString(s []byte, i int) (end int, escaped, ok bool) {
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return j + 1, escaped, true
		case c < 0x20:
			return 0, false, false
		case c == '\\':
			escaped = true
			if j+1 >= len(s) {
				return 0, false, false
			}
			switch s[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if j+5 >= len(s) || !isHex(s[j+2]) || !isHex(s[j+3]) || !isHex(s[j+4]) || !isHex(s[j+5]) {
					return 0, false, false
				}
				j += 5
			default:
				return 0, false, false
			}
		}
	}
	return 0, false, false
}

// scanJSONNumber returns the end of the number at s[i], or i if there is
// none: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func scanJSONNumber(s []byte, i int) int {
	j := i
	if j < len(s) && s[j] == '-' {
		j++
	}
	switch {
	case j < len(s) && s[j] == '0':
		j++
	case j < len(s) && s[j] >= '1' && s[j] <= '9':
		for j < len(s) && isDigit(s[j]) {
			j++
		}
	default:
		return i
	}
	if j < len(s) && s[j] == '.' {
		k := j + 1
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		if k == j+1 {
			return i
		}
		j = k
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		m := k
		for m < len(s) && isDigit(s[m]) {
			m++
		}
		if m == k {
			return i
		}
		j = m
	}
	return j
}

// lookup follows a path from the root object. $body paths match names
// exactly (IoT Edge selects with Json.NET, which is case-sensitive);
// $twin paths ignore case, as IoT Hub documents for twin queries. When a
// name occurs twice the last occurrence wins, as in Json.NET, and for twin
// paths an exact match beats one that differs in case. A missing name, an
// index on a non-array or a name on a non-object is undefined.
func (d *jsonDoc) lookup(in *Input, path []pathSegment, fold bool) value {
	at := uint32(0)
	for _, seg := range path {
		obj := d.nodes[at]
		if obj.kind != kindObject {
			return undefinedValue
		}
		exact, loose := uint32(0), uint32(0)
		for k := at + 1; k < obj.next; k = d.nodes[k+1].next {
			key := d.nodes[k]
			switch name := d.keyBytes(in, key); {
			case bytes.Equal(name, seg.name):
				exact = k + 1
			case fold && loose == 0 && bytes.EqualFold(name, seg.name):
				loose = k + 1
			}
		}
		switch {
		case exact != 0:
			at = exact
		case loose != 0:
			at = loose
		default:
			return undefinedValue
		}
		if seg.index >= 0 {
			arr := d.nodes[at]
			if arr.kind != kindArray {
				return undefinedValue
			}
			el, n := at+1, 0
			for el < arr.next && n < seg.index {
				el = d.nodes[el].next
				n++
			}
			if el >= arr.next {
				return undefinedValue
			}
			at = el
		}
	}
	return d.valueAt(in, at)
}

// keyBytes returns a member name, decoding escapes into the arena. The
// decoded bytes are dropped again at once: they are only compared.
func (d *jsonDoc) keyBytes(in *Input, key jsonNode) []byte {
	raw := d.src[key.start:key.end]
	if !key.escaped {
		return raw
	}
	mark := len(in.arena)
	in.arena = appendUnescaped(in.arena, raw)
	b := in.arena[mark:]
	in.arena = in.arena[:mark]
	return b
}

func (d *jsonDoc) valueAt(in *Input, at uint32) value {
	n := d.nodes[at]
	switch n.kind {
	case kindString:
		raw := d.src[n.start:n.end]
		if !n.escaped {
			return stringValue(bytesView(raw))
		}
		mark := len(in.arena)
		in.arena = appendUnescaped(in.arena, raw)
		return stringValue(in.arenaString(mark))
	case kindNumber:
		f, ok := parseFloat(bytesView(d.src[n.start:n.end]))
		if !ok {
			return undefinedValue
		}
		return numberValue(f)
	case kindBool:
		return boolValue(n.truth)
	}
	return value{kind: n.kind} // null, object or array
}

// appendUnescaped decodes the escapes of a validated JSON string.
// Surrogate pairs written as two \u escapes join; a lone surrogate becomes
// U+FFFD.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := rune(hexValue(raw[i+2 : i+6]))
			i += 6
			if utf16.IsSurrogate(r) && i+5 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if p := utf16.DecodeRune(r, rune(hexValue(raw[i+2:i+6]))); p != utf8.RuneError {
					dst = utf8.AppendRune(dst, p)
					i += 6
					continue
				}
			}
			dst = utf8.AppendRune(dst, r) // a lone surrogate becomes U+FFFD
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

func hexValue(h []byte) uint16 {
	var v uint16
	for _, c := range h {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint16(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint16(c - 'a' + 10)
		default:
			v |= uint16(c - 'A' + 10)
		}
	}
	return v
}
