package wire

import (
	"fmt"
	"time"
)

// fields reads a composite's positional fields, tolerating absent trailing
// fields and nulls, and accepting any integer width that holds the value
// (peers differ in which constructor they pick).
type fields struct {
	what string
	list []any
	err  error
}

func (f *fields) at(i int) any {
	if i < len(f.list) {
		return f.list[i]
	}
	return nil
}

func (f *fields) fail(i int, want string) {
	if f.err == nil {
		f.err = fmt.Errorf("wire: %s field %d: want %s, got %T", f.what, i, want, f.at(i))
	}
}

func (f *fields) present(i int) bool { return f.at(i) != nil }

func (f *fields) str(i int) string {
	switch v := f.at(i).(type) {
	case nil:
		return ""
	case string:
		return v
	case Symbol:
		return string(v)
	}
	f.fail(i, "string")
	return ""
}

func (f *fields) sym(i int) Symbol {
	switch v := f.at(i).(type) {
	case nil:
		return ""
	case Symbol:
		return v
	case string:
		return Symbol(v)
	}
	f.fail(i, "symbol")
	return ""
}

func (f *fields) syms(i int) []Symbol {
	v := f.at(i)
	if v == nil {
		return nil
	}
	s := Symbols(v)
	if s == nil {
		f.fail(i, "symbol or symbol array")
	}
	return s
}

func (f *fields) boolean(i int) bool {
	switch v := f.at(i).(type) {
	case nil:
		return false
	case bool:
		return v
	}
	f.fail(i, "boolean")
	return false
}

func (f *fields) u64(i int) (uint64, bool) {
	switch v := f.at(i).(type) {
	case nil:
		return 0, false
	case uint8:
		return uint64(v), true
	case uint16:
		return uint64(v), true
	case uint32:
		return uint64(v), true
	case uint64:
		return v, true
	case int8, int16, int32, int64:
		n := toInt64(v)
		if n >= 0 {
			return uint64(n), true
		}
	}
	f.fail(i, "unsigned integer")
	return 0, false
}

func (f *fields) u32(i int) uint32 {
	n, _ := f.u64(i)
	if n > 0xffffffff {
		f.fail(i, "uint")
	}
	return uint32(n)
}

func (f *fields) u32p(i int) *uint32 {
	n, ok := f.u64(i)
	if !ok {
		return nil
	}
	if n > 0xffffffff {
		f.fail(i, "uint")
	}
	v := uint32(n)
	return &v
}

func (f *fields) u8p(i int) *uint8 {
	n, ok := f.u64(i)
	if !ok {
		return nil
	}
	if n > 0xff {
		f.fail(i, "ubyte")
	}
	v := uint8(n)
	return &v
}

func (f *fields) binary(i int) []byte {
	switch v := f.at(i).(type) {
	case nil:
		return nil
	case []byte:
		return v
	}
	f.fail(i, "binary")
	return nil
}

func (f *fields) mapping(i int) Map {
	switch v := f.at(i).(type) {
	case nil:
		return nil
	case Map:
		return v
	}
	f.fail(i, "map")
	return nil
}

func (f *fields) errorField(i int) *Error {
	v := f.at(i)
	if v == nil {
		return nil
	}
	e, err := parseError(v)
	if err != nil && f.err == nil {
		f.err = err
	}
	return e
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case int64:
		return n
	}
	return -1
}

// AsInt64 converts any AMQP integer to int64 (false when v is not one or
// does not fit).
func AsInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int8, int16, int32, int64:
		return toInt64(n), true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		if n <= 1<<63-1 {
			return int64(n), true
		}
	case int:
		return int64(n), true
	}
	return 0, false
}

// AsTime converts a timestamp (or milliseconds as an integer) to time.
func AsTime(v any) (time.Time, bool) {
	if t, ok := v.(time.Time); ok {
		return t, true
	}
	if n, ok := AsInt64(v); ok {
		return time.UnixMilli(n).UTC(), true
	}
	return time.Time{}, false
}

// trimList drops trailing nulls: absent trailing fields are not sent.
func trimList(l []any) []any {
	n := len(l)
	for n > 0 && l[n-1] == nil {
		n--
	}
	return l[:n]
}

// appendComposite writes a described list with a small-ulong descriptor
// (00 53 code), the only form go-amqp accepts for performatives.
func appendComposite(b []byte, code byte, l []any) ([]byte, error) {
	b = append(b, TypeDescribed, TypeSmallUlong, code)
	return AppendList(b, trimList(l))
}

// optional returns nil for the zero value so it is encoded as null.
func optSym(s Symbol) any {
	if s == "" {
		return nil
	}
	return s
}

func optStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func optSyms(s []Symbol) any {
	if len(s) == 0 {
		return nil
	}
	return SymbolArray(s...)
}

func optMap(m Map) any {
	if len(m) == 0 {
		return nil
	}
	return m
}

func optBool(v bool) any {
	if !v {
		return nil
	}
	return true
}

func optU32(p *uint32) any {
	if p == nil {
		return nil
	}
	return *p
}

func optU8(p *uint8) any {
	if p == nil {
		return nil
	}
	return *p
}
