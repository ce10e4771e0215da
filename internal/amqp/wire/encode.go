package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Marshaler is implemented by composite values (performatives, sections,
// delivery states) that encode themselves.
type Marshaler interface {
	AppendAMQP(b []byte) ([]byte, error)
}

// Append appends the AMQP encoding of v to b, in the most compact
// constructor for its value. Go int encodes as long; a map[string]any
// (application properties) encodes with its keys sorted, as strings.
func Append(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, TypeNull), nil
	case Marshaler:
		return v.AppendAMQP(b)
	case bool:
		if v {
			return append(b, TypeTrue), nil
		}
		return append(b, TypeFalse), nil
	case uint8:
		return append(b, TypeUbyte, v), nil
	case uint16:
		return binary.BigEndian.AppendUint16(append(b, TypeUshort), v), nil
	case uint32:
		return AppendUint(b, v), nil
	case uint64:
		return AppendUlong(b, v), nil
	case int8:
		return append(b, TypeByte, byte(v)), nil
	case int16:
		return binary.BigEndian.AppendUint16(append(b, TypeShort), uint16(v)), nil
	case int32:
		if v >= -128 && v <= 127 {
			return append(b, TypeSmallInt, byte(v)), nil
		}
		return binary.BigEndian.AppendUint32(append(b, TypeInt), uint32(v)), nil
	case int64:
		return AppendLong(b, v), nil
	case int:
		return AppendLong(b, int64(v)), nil
	case float32:
		return binary.BigEndian.AppendUint32(append(b, TypeFloat), math.Float32bits(v)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(b, TypeDouble), math.Float64bits(v)), nil
	case Char:
		return binary.BigEndian.AppendUint32(append(b, TypeChar), uint32(v)), nil
	case time.Time:
		return AppendTimestamp(b, v), nil
	case UUID:
		return append(append(b, TypeUUID), v[:]...), nil
	case []byte:
		return AppendBinary(b, v), nil
	case string:
		return AppendString(b, v), nil
	case Symbol:
		return AppendSymbol(b, v), nil
	case []any:
		return AppendList(b, v)
	case Map:
		return appendMap(b, v)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		m := make(Map, len(keys))
		for i, k := range keys {
			m[i] = KV{k, v[k]}
		}
		return appendMap(b, m)
	case Array:
		return appendArray(b, v)
	case Described:
		b = append(b, TypeDescribed)
		b, err := Append(b, v.Descriptor)
		if err != nil {
			return b, err
		}
		return Append(b, v.Value)
	}
	return b, fmt.Errorf("wire: cannot encode %T", v)
}

// AppendUint appends a uint in its smallest form.
func AppendUint(b []byte, v uint32) []byte {
	switch {
	case v == 0:
		return append(b, TypeUint0)
	case v < 256:
		return append(b, TypeSmallUint, byte(v))
	}
	return binary.BigEndian.AppendUint32(append(b, TypeUint), v)
}

// AppendUlong appends a ulong in its smallest form.
func AppendUlong(b []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(b, TypeUlong0)
	case v < 256:
		return append(b, TypeSmallUlong, byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, TypeUlong), v)
}

// AppendLong appends a long in its smallest form.
func AppendLong(b []byte, v int64) []byte {
	if v >= -128 && v <= 127 {
		return append(b, TypeSmallLong, byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, TypeLong), uint64(v))
}

// AppendTimestamp appends t as milliseconds since the Unix epoch.
func AppendTimestamp(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(append(b, TypeTimestamp), uint64(t.UnixMilli()))
}

// AppendBinary appends a binary value.
func AppendBinary(b []byte, v []byte) []byte {
	if len(v) < 256 {
		b = append(b, TypeVbin8, byte(len(v)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, TypeVbin32), uint32(len(v)))
	}
	return append(b, v...)
}

// AppendString appends a UTF-8 string.
func AppendString(b []byte, v string) []byte {
	if len(v) < 256 {
		b = append(b, TypeStr8, byte(len(v)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, TypeStr32), uint32(len(v)))
	}
	return append(b, v...)
}

// AppendSymbol appends a symbol.
func AppendSymbol(b []byte, v Symbol) []byte {
	if len(v) < 256 {
		b = append(b, TypeSym8, byte(len(v)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, TypeSym32), uint32(len(v)))
	}
	return append(b, v...)
}

// AppendList appends a list of values.
func AppendList(b []byte, items []any) ([]byte, error) {
	if len(items) == 0 {
		return append(b, TypeList0), nil
	}
	start := len(b)
	b = append(b, TypeList32, 0, 0, 0, 0, 0, 0, 0, 0)
	var err error
	for _, it := range items {
		if b, err = Append(b, it); err != nil {
			return b, err
		}
	}
	return finishCompound(b, start, TypeList8, uint32(len(items))), nil
}

// BeginList starts a list written item by item with Append; FinishList
// completes it. Performatives use the pair to encode without building []any.
func BeginList(b []byte) ([]byte, int) {
	start := len(b)
	return append(b, TypeList32, 0, 0, 0, 0, 0, 0, 0, 0), start
}

// FinishList writes the size and count of a list begun at start.
func FinishList(b []byte, start int, count uint32) []byte {
	if count == 0 {
		return append(b[:start], TypeList0)
	}
	return finishCompound(b, start, TypeList8, count)
}

// finishCompound fills in a list32/map32 header reserved at start, or
// shrinks it to the 8-bit form when the contents allow.
func finishCompound(b []byte, start int, small byte, count uint32) []byte {
	body := len(b) - start - 9
	if body+1 < 256 && count < 256 {
		b[start] = small
		b[start+1] = byte(body + 1)
		b[start+2] = byte(count)
		copy(b[start+3:], b[start+9:])
		return b[:len(b)-6]
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(body+4))
	binary.BigEndian.PutUint32(b[start+5:], count)
	return b
}

func appendMap(b []byte, m Map) ([]byte, error) {
	start := len(b)
	b = append(b, TypeMap32, 0, 0, 0, 0, 0, 0, 0, 0)
	var err error
	for _, e := range m {
		if b, err = Append(b, e.Key); err != nil {
			return b, err
		}
		if b, err = Append(b, e.Value); err != nil {
			return b, err
		}
	}
	return finishCompound(b, start, TypeMap8, uint32(2*len(m))), nil
}

// appendArray writes an array32: the element constructor once, then each
// element's bytes without a constructor.
func appendArray(b []byte, a Array) ([]byte, error) {
	start := len(b)
	b = append(b, TypeArray32, 0, 0, 0, 0, 0, 0, 0, 0, a.Code)
	for _, it := range a.Items {
		var err error
		if b, err = appendArrayElem(b, a.Code, it); err != nil {
			return b, err
		}
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(len(b)-start-5))
	binary.BigEndian.PutUint32(b[start+5:], uint32(len(a.Items)))
	return b, nil
}

func appendArrayElem(b []byte, code byte, v any) ([]byte, error) {
	bad := func() ([]byte, error) {
		return b, fmt.Errorf("wire: array element %T does not fit constructor 0x%02x", v, code)
	}
	switch code {
	case TypeNull, TypeTrue, TypeFalse, TypeUint0, TypeUlong0, TypeList0:
		return b, nil // the constructor says it all
	case TypeSym8, TypeStr8, TypeVbin8:
		var n int
		switch s := v.(type) {
		case Symbol:
			n = len(s)
		case string:
			n = len(s)
		case []byte:
			n = len(s)
		default:
			return bad()
		}
		if n > 255 || (code == TypeSym8) != isSymbol(v) || (code == TypeStr8) != isString(v) {
			return bad()
		}
		b = append(b, byte(n))
		switch s := v.(type) {
		case Symbol:
			return append(b, s...), nil
		case string:
			return append(b, s...), nil
		}
		return append(b, v.([]byte)...), nil
	case TypeSmallUint, TypeSmallUlong, TypeSmallInt, TypeSmallLong:
		n, ok := AsInt64(v)
		fits := ok && ((code == TypeSmallUint && isType[uint32](v) && n < 256) ||
			(code == TypeSmallUlong && isType[uint64](v) && n < 256) ||
			(code == TypeSmallInt && isType[int32](v) && n >= -128 && n < 128) ||
			(code == TypeSmallLong && isType[int64](v) && n >= -128 && n < 128))
		if !fits {
			return bad()
		}
		return append(b, byte(n)), nil
	case TypeBool:
		x, ok := v.(bool)
		if !ok {
			return bad()
		}
		if x {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case TypeUbyte, TypeByte, TypeUshort, TypeShort, TypeFloat, TypeDouble, TypeChar:
		enc, err := Append(nil, v)
		if err != nil {
			return b, err
		}
		if enc[0] != code {
			return bad()
		}
		return append(b, enc[1:]...), nil
	case TypeSym32:
		s, ok := v.(Symbol)
		if !ok {
			return bad()
		}
		return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...), nil
	case TypeStr32:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...), nil
	case TypeVbin32:
		s, ok := v.([]byte)
		if !ok {
			return bad()
		}
		return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...), nil
	case TypeLong:
		n, ok := v.(int64)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, uint64(n)), nil
	case TypeUlong:
		n, ok := v.(uint64)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, n), nil
	case TypeInt:
		n, ok := v.(int32)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint32(b, uint32(n)), nil
	case TypeUint:
		n, ok := v.(uint32)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint32(b, n), nil
	case TypeTimestamp:
		t, ok := v.(time.Time)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, uint64(t.UnixMilli())), nil
	case TypeUUID:
		u, ok := v.(UUID)
		if !ok {
			return bad()
		}
		return append(b, u[:]...), nil
	case TypeMap32:
		m, ok := v.(Map)
		if !ok {
			return bad()
		}
		enc, err := appendMap(nil, m)
		if err != nil {
			return b, err
		}
		if enc[0] == TypeMap8 { // re-widen: array elements share one constructor
			inner := enc[3:]
			b = binary.BigEndian.AppendUint32(b, uint32(len(inner)+4))
			b = binary.BigEndian.AppendUint32(b, uint32(enc[2]))
			return append(b, inner...), nil
		}
		return append(b, enc[1:]...), nil
	}
	return b, fmt.Errorf("wire: arrays of constructor 0x%02x are not supported", code)
}

func isSymbol(v any) bool { _, ok := v.(Symbol); return ok }

func isString(v any) bool { _, ok := v.(string); return ok }

func isType[T any](v any) bool { _, ok := v.(T); return ok }
