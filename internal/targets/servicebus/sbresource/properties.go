package sbresource

import (
	"encoding/json"
	"github.com/outpost-iot/outpost/internal/isoduration"
	"math"
	"strings"
	"time"
)

// Settings are the receive-side settings of a queue or subscription and
// the send-side ones of a queue or topic, decoded from the stored document.
type Settings struct {
	LockDuration               time.Duration
	MaxDeliveryCount           int
	DefaultTTL                 time.Duration
	DeadLetterOnExpiration     bool
	RequiresDuplicateDetection bool
	DuplicateWindow            time.Duration
	// Status is Active, Disabled, SendDisabled or ReceiveDisabled.
	Status string
}

// DecodeSettings reads the settings of a stored queue, topic or
// subscription, with Service Bus's defaults for anything missing.
func DecodeSettings(body []byte) Settings {
	var doc struct {
		Properties struct {
			LockDuration               string `json:"lockDuration"`
			MaxDeliveryCount           int    `json:"maxDeliveryCount"`
			DefaultMessageTimeToLive   string `json:"defaultMessageTimeToLive"`
			DeadLetteringOnExpiration  bool   `json:"deadLetteringOnMessageExpiration"`
			RequiresDuplicateDetection bool   `json:"requiresDuplicateDetection"`
			DuplicateWindow            string `json:"duplicateDetectionHistoryTimeWindow"`
			Status                     string `json:"status"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(body, &doc)
	p := doc.Properties
	s := Settings{
		LockDuration: time.Minute, MaxDeliveryCount: 10, DefaultTTL: time.Duration(math.MaxInt64),
		DeadLetterOnExpiration: p.DeadLetteringOnExpiration, RequiresDuplicateDetection: p.RequiresDuplicateDetection,
		DuplicateWindow: 10 * time.Minute, Status: p.Status,
	}
	if d, err := isoduration.Parse(p.LockDuration); err == nil && d > 0 {
		s.LockDuration = d
	}
	if p.MaxDeliveryCount > 0 {
		s.MaxDeliveryCount = p.MaxDeliveryCount
	}
	if d, err := isoduration.Parse(p.DefaultMessageTimeToLive); err == nil && d > 0 {
		s.DefaultTTL = d
	}
	if d, err := isoduration.Parse(p.DuplicateWindow); err == nil && d > 0 {
		s.DuplicateWindow = d
	}
	if s.Status == "" {
		s.Status = "Active"
	}
	return s
}

// propKind is how a property is validated.
type propKind int

const (
	kindBool propKind = iota
	kindInt
	kindDuration
	kindStatus
	kindString
)

// propSpec is one writable property of an entity with its default and,
// for numbers and durations, its range.
type propSpec struct {
	name     string
	kind     propKind
	def      any
	min, max time.Duration // durations
	imin     int64         // integers
	imax     int64
	// fixed properties cannot change after creation (Azure refuses it).
	fixed bool
}

var statuses = []string{"Active", "Disabled", "SendDisabled", "ReceiveDisabled"}

var queueProps = []propSpec{
	{name: "lockDuration", kind: kindDuration, def: "PT1M", min: 5 * time.Second, max: 5 * time.Minute},
	{name: "maxSizeInMegabytes", kind: kindInt, def: 1024, imin: 1, imax: 81920},
	{name: "requiresDuplicateDetection", kind: kindBool, def: false, fixed: true},
	{name: "requiresSession", kind: kindBool, def: false, fixed: true},
	{name: "defaultMessageTimeToLive", kind: kindDuration, def: maxTimeSpan, min: time.Second},
	{name: "deadLetteringOnMessageExpiration", kind: kindBool, def: false},
	{name: "duplicateDetectionHistoryTimeWindow", kind: kindDuration, def: "PT10M", min: 20 * time.Second, max: 7 * 24 * time.Hour},
	{name: "maxDeliveryCount", kind: kindInt, def: 10, imin: 1, imax: math.MaxInt32},
	{name: "status", kind: kindStatus, def: "Active"},
	{name: "enableBatchedOperations", kind: kindBool, def: true},
	{name: "autoDeleteOnIdle", kind: kindDuration, def: maxTimeSpan, min: 5 * time.Minute},
	{name: "enablePartitioning", kind: kindBool, def: false, fixed: true},
	{name: "enableExpress", kind: kindBool, def: false},
	{name: "forwardTo", kind: kindString},
	{name: "forwardDeadLetteredMessagesTo", kind: kindString},
}

var topicProps = []propSpec{
	{name: "defaultMessageTimeToLive", kind: kindDuration, def: maxTimeSpan, min: time.Second},
	{name: "maxSizeInMegabytes", kind: kindInt, def: 1024, imin: 1, imax: 81920},
	{name: "requiresDuplicateDetection", kind: kindBool, def: false, fixed: true},
	{name: "duplicateDetectionHistoryTimeWindow", kind: kindDuration, def: "PT10M", min: 20 * time.Second, max: 7 * 24 * time.Hour},
	{name: "enableBatchedOperations", kind: kindBool, def: true},
	{name: "status", kind: kindStatus, def: "Active"},
	{name: "supportOrdering", kind: kindBool, def: true},
	{name: "autoDeleteOnIdle", kind: kindDuration, def: maxTimeSpan, min: 5 * time.Minute},
	{name: "enablePartitioning", kind: kindBool, def: false, fixed: true},
	{name: "enableExpress", kind: kindBool, def: false},
}

var subscriptionProps = []propSpec{
	{name: "lockDuration", kind: kindDuration, def: "PT1M", min: 5 * time.Second, max: 5 * time.Minute},
	{name: "requiresSession", kind: kindBool, def: false, fixed: true},
	{name: "defaultMessageTimeToLive", kind: kindDuration, def: maxTimeSpan, min: time.Second},
	{name: "deadLetteringOnFilterEvaluationExceptions", kind: kindBool, def: true},
	{name: "deadLetteringOnMessageExpiration", kind: kindBool, def: false},
	{name: "maxDeliveryCount", kind: kindInt, def: 10, imin: 1, imax: math.MaxInt32},
	{name: "status", kind: kindStatus, def: "Active"},
	{name: "enableBatchedOperations", kind: kindBool, def: true},
	{name: "autoDeleteOnIdle", kind: kindDuration, def: maxTimeSpan, min: 5 * time.Minute},
	{name: "forwardTo", kind: kindString},
	{name: "forwardDeadLetteredMessagesTo", kind: kindString},
	{name: "isClientAffine", kind: kindBool, def: false, fixed: true},
}

// buildProps validates the writable properties of a PUT body against specs
// and fills defaults; unknown members are ignored (as ARM does for
// read-only ones clients echo back). current is the stored properties
// (nil on create), used for fixed properties and createdAt.
func buildProps(what string, specs []propSpec, body, current map[string]json.RawMessage, now string) (map[string]any, error) {
	out := map[string]any{}
	for _, sp := range specs {
		raw, given := body[sp.name]
		if given && string(raw) == "null" {
			given = false
		}
		if !given {
			if sp.def != nil {
				out[sp.name] = sp.def
			}
			if cur, ok := current[sp.name]; ok && sp.fixed {
				var v any
				_ = json.Unmarshal(cur, &v)
				out[sp.name] = v
			}
			continue
		}
		v, err := checkProp(what, sp, raw)
		if err != nil {
			return nil, err
		}
		if cur, ok := current[sp.name]; ok && sp.fixed {
			var was any
			_ = json.Unmarshal(cur, &was)
			if was != nil && !sameJSON(was, v) {
				return nil, invalid("The property '%s' of the %s can't be changed after it is created (it is %v). Delete and recreate the %s to change it.", sp.name, what, was, what)
			}
		}
		out[sp.name] = v
	}
	created := now
	if c, ok := current["createdAt"]; ok {
		_ = json.Unmarshal(c, &created)
	}
	out["createdAt"], out["updatedAt"], out["accessedAt"] = created, now, now
	return out, nil
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func checkProp(what string, sp propSpec, raw json.RawMessage) (any, error) {
	switch sp.kind {
	case kindBool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, invalid("The property '%s' of the %s must be true or false, got %s.", sp.name, what, raw)
		}
		return b, nil
	case kindInt:
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) {
			return nil, invalid("The property '%s' of the %s must be an integer, got %s.", sp.name, what, raw)
		}
		n := int64(f)
		if n < sp.imin || n > sp.imax {
			return nil, invalid("The property '%s' of the %s is %d; it must be between %d and %d.", sp.name, what, n, sp.imin, sp.imax)
		}
		return n, nil
	case kindDuration:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalid("The property '%s' of the %s must be an ISO 8601 duration string such as \"PT1M\", got %s.", sp.name, what, raw)
		}
		d, err := isoduration.Parse(s)
		if err != nil {
			return nil, invalid("The property '%s' of the %s is invalid: %v.", sp.name, what, err)
		}
		if d < sp.min || (sp.max > 0 && d > sp.max) {
			limit := "at least " + isoduration.Format(sp.min)
			if sp.max > 0 {
				limit = "between " + isoduration.Format(sp.min) + " and " + isoduration.Format(sp.max)
			}
			return nil, invalid("The property '%s' of the %s is %s; it must be %s.", sp.name, what, s, limit)
		}
		return s, nil
	case kindStatus:
		var s string
		_ = json.Unmarshal(raw, &s)
		for _, st := range statuses {
			if strings.EqualFold(st, s) {
				return st, nil
			}
		}
		return nil, invalid("The status %s of the %s is not supported; use one of %s.", raw, what, strings.Join(statuses, ", "))
	default:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalid("The property '%s' of the %s must be a string, got %s.", sp.name, what, raw)
		}
		return s, nil
	}
}
