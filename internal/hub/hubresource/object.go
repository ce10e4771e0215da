package hubresource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// object is a JSON object whose members this package reads one by one, so
// members it does not know are echoed exactly as the client sent them.
// Member names are matched case-insensitively when the exact spelling is
// absent: Azure's resource providers deserialize that way, and hand-written
// templates rely on it.
type object map[string]json.RawMessage

// decodeObject decodes raw as an object; what names it in errors.
func decodeObject(raw json.RawMessage, what string) (object, error) {
	var o object
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		return nil, invalid("%s must be a JSON object, got %s.", what, abbreviate(raw))
	}
	return o, nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func abbreviate(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// key finds the spelling of key used in o ("" when absent).
func (o object) key(key string) string {
	if _, ok := o[key]; ok {
		return key
	}
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic when a client sends two spellings
	for _, k := range keys {
		if strings.EqualFold(k, key) {
			return k
		}
	}
	return ""
}

// take removes key from o and returns its value; ok is false when the
// member is absent or null.
func (o object) take(key string) (json.RawMessage, bool) {
	k := o.key(key)
	if k == "" {
		return nil, false
	}
	raw := o[k]
	delete(o, k)
	return raw, !isNull(raw)
}

// get returns key's value without removing it.
func (o object) get(key string) (json.RawMessage, bool) {
	k := o.key(key)
	if k == "" {
		return nil, false
	}
	return o[k], !isNull(o[k])
}

// set replaces key (whatever its spelling in o) with v.
func (o object) set(key string, v any) {
	if k := o.key(key); k != "" {
		delete(o, k)
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("hubresource: encode %s: %v", key, err))
	}
	o[key] = b
}

// str reads a string member; ok is false when absent or null.
func (o object) str(key, what string) (string, bool, error) {
	raw, ok := o.get(key)
	if !ok {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, invalid("%s.%s must be a string, got %s.", what, key, abbreviate(raw))
	}
	return s, true, nil
}

// integer reads an integer member; ok is false when absent or null.
func (o object) integer(key, what string) (int64, bool, error) {
	raw, ok := o.get(key)
	if !ok {
		return 0, false, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if i, err := n.Int64(); err == nil {
			return i, true, nil
		}
	}
	return 0, false, invalid("%s.%s must be an integer, got %s.", what, key, abbreviate(raw))
}

// boolean reads a boolean member; ok is false when absent or null.
func (o object) boolean(key, what string) (bool, bool, error) {
	raw, ok := o.get(key)
	if !ok {
		return false, false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, false, invalid("%s.%s must be true or false, got %s.", what, key, abbreviate(raw))
	}
	return b, true, nil
}

// clone copies o (values are immutable byte slices).
func (o object) clone() object {
	c := make(object, len(o))
	for k, v := range o {
		c[k] = v
	}
	return c
}

// sub decodes member key of o as an object (nil when absent or null).
func (o object) sub(key, what string) (object, error) {
	raw, ok := o.get(key)
	if !ok {
		return nil, nil
	}
	return decodeObject(raw, what+"."+key)
}

// objects decodes member key of o as an array of objects (nil when absent
// or null).
func (o object) objects(key, what string) ([]object, error) {
	raw, ok := o.get(key)
	if !ok {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, invalid("%s.%s must be an array, got %s.", what, key, abbreviate(raw))
	}
	out := make([]object, len(items))
	for i, it := range items {
		obj, err := decodeObject(it, fmt.Sprintf("%s.%s[%d]", what, key, i))
		if err != nil {
			return nil, err
		}
		out[i] = obj
	}
	return out, nil
}

// strings decodes member key as an array of strings.
func (o object) strings(key, what string) ([]string, bool, error) {
	raw, ok := o.get(key)
	if !ok {
		return nil, false, nil
	}
	var out []string
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, false, invalid("%s.%s must be an array of strings, got %s.", what, key, abbreviate(raw))
	}
	return out, true, nil
}

// canonical returns the member of allowed that equals v ignoring case.
func canonical(v string, allowed ...string) (string, bool) {
	for _, a := range allowed {
		if strings.EqualFold(a, v) {
			return a, true
		}
	}
	return "", false
}
