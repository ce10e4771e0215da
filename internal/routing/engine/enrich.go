package engine

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
)

// enrichmentValue resolves an enrichment's value for a message: a static
// string, $iothubname, or a $twin path. What can't be resolved — no twin
// reader, no twin, a missing path, an object — is stamped verbatim, as IoT
// Hub does.
func enrichmentValue(ctx context.Context, value string, m *Message, twins TwinReader) string {
	switch {
	case strings.EqualFold(value, "$iothubname"):
		return m.Hub
	case len(value) > 6 && strings.EqualFold(value[:6], "$twin."):
		if twins == nil || m.DeviceID == "" {
			return value
		}
		doc, err := twins.Twin(ctx, m.Hub, m.DeviceID, m.ModuleID)
		if err != nil || len(doc) == 0 {
			return value
		}
		if v, ok := twinPath(doc, strings.Split(value[6:], ".")); ok {
			return v
		}
	}
	return value
}

// twinPath reads a primitive at path (tags.x, properties.desired.y, …).
func twinPath(doc []byte, path []string) (string, bool) {
	var cur any
	if json.Unmarshal(doc, &cur) != nil {
		return "", false
	}
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		found := false
		for k, v := range obj {
			if strings.EqualFold(k, p) {
				cur, found = v, true
				break
			}
		}
		if !found {
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	case nil:
		return "null", true
	}
	return "", false // objects and arrays are not stamped
}
