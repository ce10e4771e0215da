package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// ErrShort is returned when the input ends inside a value.
var ErrShort = errors.New("wire: value truncated")

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

// Decoder reads AMQP values from a byte slice. Strings and binaries are
// copied out, so the decoded values do not alias the input.
type Decoder struct {
	buf   []byte
	pos   int
	depth int
}

// NewDecoder reads from b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Len is the number of bytes not yet read.
func (d *Decoder) Len() int { return len(d.buf) - d.pos }

// Rest returns the unread bytes (aliasing the input).
func (d *Decoder) Rest() []byte { return d.buf[d.pos:] }

// Offset is the position of the next byte to read.
func (d *Decoder) Offset() int { return d.pos }

// PeekByte returns the next byte without consuming it.
func (d *Decoder) PeekByte() (byte, error) {
	if d.pos >= len(d.buf) {
		return 0, ErrShort
	}
	return d.buf[d.pos], nil
}

func (d *Decoder) take(n int) ([]byte, error) {
	if n < 0 || d.Len() < n {
		return nil, ErrShort
	}
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *Decoder) byte1() (byte, error) {
	b, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (d *Decoder) u32() (uint32, error) {
	b, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

// Decode decodes one value from the start of b and reports how many bytes
// it used.
func Decode(b []byte) (any, int, error) {
	d := NewDecoder(b)
	v, err := d.Value()
	return v, d.pos, err
}

// Value decodes the next value.
func (d *Decoder) Value() (any, error) {
	code, err := d.byte1()
	if err != nil {
		return nil, err
	}
	if code == TypeDescribed {
		return d.described()
	}
	return d.typed(code)
}

func (d *Decoder) described() (any, error) {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		return nil, errors.New("wire: values nested too deeply")
	}
	desc, err := d.Value()
	if err != nil {
		return nil, err
	}
	switch desc.(type) {
	case uint64, Symbol:
	default:
		return nil, fmt.Errorf("wire: descriptor of type %T", desc)
	}
	val, err := d.Value()
	if err != nil {
		return nil, err
	}
	return Described{Descriptor: desc, Value: val}, nil
}

// typed decodes a value whose constructor code has been read.
func (d *Decoder) typed(code byte) (any, error) {
	switch code {
	case TypeNull:
		return nil, nil
	case TypeTrue:
		return true, nil
	case TypeFalse:
		return false, nil
	case TypeUint0:
		return uint32(0), nil
	case TypeUlong0:
		return uint64(0), nil
	case TypeList0:
		return []any{}, nil
	case TypeBool:
		b, err := d.byte1()
		return b != 0, err
	case TypeUbyte:
		b, err := d.byte1()
		return b, err
	case TypeByte:
		b, err := d.byte1()
		return int8(b), err
	case TypeSmallUint:
		b, err := d.byte1()
		return uint32(b), err
	case TypeSmallUlong:
		b, err := d.byte1()
		return uint64(b), err
	case TypeSmallInt:
		b, err := d.byte1()
		return int32(int8(b)), err
	case TypeSmallLong:
		b, err := d.byte1()
		return int64(int8(b)), err
	case TypeUshort, TypeShort:
		b, err := d.take(2)
		if err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint16(b)
		if code == TypeShort {
			return int16(n), nil
		}
		return n, nil
	case TypeUint, TypeInt, TypeFloat, TypeChar:
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		switch code {
		case TypeInt:
			return int32(n), nil
		case TypeFloat:
			return math.Float32frombits(n), nil
		case TypeChar:
			return Char(n), nil
		}
		return n, nil
	case TypeUlong, TypeLong, TypeDouble, TypeTimestamp:
		b, err := d.take(8)
		if err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint64(b)
		switch code {
		case TypeLong:
			return int64(n), nil
		case TypeDouble:
			return math.Float64frombits(n), nil
		case TypeTimestamp:
			return time.UnixMilli(int64(n)).UTC(), nil
		}
		return n, nil
	case TypeUUID:
		b, err := d.take(16)
		if err != nil {
			return nil, err
		}
		var u UUID
		copy(u[:], b)
		return u, nil
	case TypeDecimal32, TypeDecimal64, TypeDecimal128:
		return nil, fmt.Errorf("wire: decimal values (0x%02x) are not supported", code)
	case TypeVbin8, TypeStr8, TypeSym8, TypeVbin32, TypeStr32, TypeSym32:
		var n int
		if code&0xf0 == 0xa0 {
			b, err := d.byte1()
			if err != nil {
				return nil, err
			}
			n = int(b)
		} else {
			u, err := d.u32()
			if err != nil {
				return nil, err
			}
			if int64(u) > int64(d.Len()) {
				return nil, ErrShort
			}
			n = int(u)
		}
		b, err := d.take(n)
		if err != nil {
			return nil, err
		}
		switch code {
		case TypeStr8, TypeStr32:
			if !utf8.Valid(b) {
				return nil, errors.New("wire: string is not valid UTF-8")
			}
			return string(b), nil
		case TypeSym8, TypeSym32:
			return Symbol(b), nil
		}
		return append([]byte(nil), b...), nil
	case TypeList8, TypeList32, TypeMap8, TypeMap32:
		return d.compound(code)
	case TypeArray8, TypeArray32:
		return d.array(code)
	}
	return nil, fmt.Errorf("wire: unknown constructor 0x%02x", code)
}

// sizeCount reads a compound's size and count (8- or 32-bit) and returns a
// decoder over exactly its contents.
func (d *Decoder) sizeCount(wide bool) (*Decoder, int, error) {
	var size, count uint32
	if wide {
		var err error
		if size, err = d.u32(); err != nil {
			return nil, 0, err
		}
		if size < 4 {
			return nil, 0, errors.New("wire: compound size smaller than its count")
		}
		body, err := d.take(int(min(size, math.MaxInt32)))
		if err != nil {
			return nil, 0, err
		}
		count = binary.BigEndian.Uint32(body)
		return &Decoder{buf: body[4:], depth: d.depth + 1}, int(min(count, math.MaxInt32)), nil
	}
	s, err := d.byte1()
	if err != nil {
		return nil, 0, err
	}
	if s < 1 {
		return nil, 0, errors.New("wire: compound size smaller than its count")
	}
	body, err := d.take(int(s))
	if err != nil {
		return nil, 0, err
	}
	return &Decoder{buf: body[1:], depth: d.depth + 1}, int(body[0]), nil
}

func (d *Decoder) compound(code byte) (any, error) {
	if d.depth+1 > maxDepth {
		return nil, errors.New("wire: values nested too deeply")
	}
	inner, count, err := d.sizeCount(code == TypeList32 || code == TypeMap32)
	if err != nil {
		return nil, err
	}
	// Every element takes at least one byte: a count beyond the contents
	// is a lie, refused before allocating for it.
	if count > inner.Len() {
		return nil, ErrShort
	}
	if code == TypeList8 || code == TypeList32 {
		out := make([]any, count)
		for i := range out {
			if out[i], err = inner.Value(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	if count%2 != 0 {
		return nil, errors.New("wire: map with an odd number of elements")
	}
	m := make(Map, count/2)
	for i := range m {
		if m[i].Key, err = inner.Value(); err != nil {
			return nil, err
		}
		if m[i].Value, err = inner.Value(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (d *Decoder) array(code byte) (any, error) {
	if d.depth+1 > maxDepth {
		return nil, errors.New("wire: values nested too deeply")
	}
	inner, count, err := d.sizeCount(code == TypeArray32)
	if err != nil {
		return nil, err
	}
	elem, err := inner.byte1()
	if err != nil {
		return nil, err
	}
	if elem == TypeDescribed {
		return nil, errors.New("wire: arrays of described values are not supported")
	}
	// Every element takes at least a byte, except the zero-width types
	// (null, true, uint0…), whose arrays are capped instead: a tiny input
	// must not claim a huge allocation.
	if zeroWidth(elem) {
		if count > 1024 {
			return nil, errors.New("wire: array of zero-width elements too long")
		}
	} else if count > inner.Len() {
		return nil, ErrShort
	}
	a := Array{Code: elem, Items: make([]any, count)}
	for i := range a.Items {
		if a.Items[i], err = inner.typed(elem); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func zeroWidth(code byte) bool {
	switch code {
	case TypeNull, TypeTrue, TypeFalse, TypeUint0, TypeUlong0, TypeList0:
		return true
	}
	return false
}
