package wire

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Symbol is an AMQP symbol (ASCII), used for keys of annotations, error
// conditions and capabilities.
type Symbol string

// UUID is an AMQP uuid in RFC 4122 byte order.
type UUID [16]byte

// String formats u as 8-4-4-4-12 hex.
func (u UUID) String() string { return uuid.UUID(u).String() }

// ParseUUID parses the 8-4-4-4-12 hex form (any letter case).
func ParseUUID(s string) (UUID, error) {
	var u UUID
	h := strings.ReplaceAll(s, "-", "")
	if len(s) != 36 || len(h) != 32 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("wire: %q is not a uuid", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("wire: %q is not a uuid: %w", s, err)
	}
	return u, nil
}

// Char is an AMQP char (a UTF-32 code point).
type Char rune

// Described is a described value: a descriptor (uint64 or Symbol) and the
// value it describes.
type Described struct {
	Descriptor any
	Value      any
}

// KV is one map entry.
type KV struct {
	Key, Value any
}

// Map is an AMQP map with its entries in wire order. AMQP maps are small
// (annotations, properties); a slice keeps the order the peer sent and
// needs no hashing of keys that may be []byte.
type Map []KV

// Get returns the value of the entry whose key is k as a Symbol or a
// string (annotation keys are symbols, application properties strings).
func (m Map) Get(k string) (any, bool) {
	for _, e := range m {
		switch key := e.Key.(type) {
		case Symbol:
			if string(key) == k {
				return e.Value, true
			}
		case string:
			if key == k {
				return e.Value, true
			}
		}
	}
	return nil, false
}

// String returns the value of key k when it is a string or symbol.
func (m Map) String(k string) string {
	v, _ := m.Get(k)
	switch s := v.(type) {
	case string:
		return s
	case Symbol:
		return string(s)
	}
	return ""
}

// Set replaces the value of symbol key k, or appends it.
func (m *Map) Set(k Symbol, v any) {
	for i, e := range *m {
		if s, ok := e.Key.(Symbol); ok && s == k {
			(*m)[i].Value = v
			return
		}
	}
	*m = append(*m, KV{Key: k, Value: v})
}

// Array is an AMQP array: every element has one type, given by Code (a
// fixed-width or variable constructor such as TypeSym32, TypeLong,
// TypeTimestamp, TypeUUID, TypeStr32, TypeMap32). Items hold the Go values
// that type decodes to.
type Array struct {
	Code  byte
	Items []any
}

// SymbolArray is an array of symbols.
func SymbolArray(syms ...Symbol) Array {
	a := Array{Code: TypeSym32, Items: make([]any, len(syms))}
	for i, s := range syms {
		a.Items[i] = s
	}
	return a
}

// StringArray is an array of strings.
func StringArray(strs ...string) Array {
	a := Array{Code: TypeStr32, Items: make([]any, len(strs))}
	for i, s := range strs {
		a.Items[i] = s
	}
	return a
}

// Items returns the elements of an array or a list (peers send either
// where a field holds several values), and false for anything else.
func Items(v any) ([]any, bool) {
	switch x := v.(type) {
	case Array:
		return x.Items, true
	case []any:
		return x, true
	}
	return nil, false
}

// Symbols returns the symbols of a single symbol or an array of symbols
// (AMQP "multiple" fields may be either).
func Symbols(v any) []Symbol {
	switch s := v.(type) {
	case Symbol:
		return []Symbol{s}
	case Array:
		out := make([]Symbol, 0, len(s.Items))
		for _, it := range s.Items {
			if sym, ok := it.(Symbol); ok {
				out = append(out, sym)
			}
		}
		return out
	}
	return nil
}

// Type constructor codes.
const (
	TypeDescribed  byte = 0x00
	TypeNull       byte = 0x40
	TypeTrue       byte = 0x41
	TypeFalse      byte = 0x42
	TypeUint0      byte = 0x43
	TypeUlong0     byte = 0x44
	TypeList0      byte = 0x45
	TypeUbyte      byte = 0x50
	TypeByte       byte = 0x51
	TypeSmallUint  byte = 0x52
	TypeSmallUlong byte = 0x53
	TypeSmallInt   byte = 0x54
	TypeSmallLong  byte = 0x55
	TypeBool       byte = 0x56
	TypeUshort     byte = 0x60
	TypeShort      byte = 0x61
	TypeUint       byte = 0x70
	TypeInt        byte = 0x71
	TypeFloat      byte = 0x72
	TypeChar       byte = 0x73
	TypeDecimal32  byte = 0x74
	TypeUlong      byte = 0x80
	TypeLong       byte = 0x81
	TypeDouble     byte = 0x82
	TypeTimestamp  byte = 0x83
	TypeDecimal64  byte = 0x84
	TypeDecimal128 byte = 0x94
	TypeUUID       byte = 0x98
	TypeVbin8      byte = 0xa0
	TypeStr8       byte = 0xa1
	TypeSym8       byte = 0xa3
	TypeVbin32     byte = 0xb0
	TypeStr32      byte = 0xb1
	TypeSym32      byte = 0xb3
	TypeList8      byte = 0xc0
	TypeMap8       byte = 0xc1
	TypeList32     byte = 0xd0
	TypeMap32      byte = 0xd1
	TypeArray8     byte = 0xe0
	TypeArray32    byte = 0xf0
)
