package servicebus

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sqlfilter"
)

// A message sent over AMQP is stored as REST stores it (BrokerProperties,
// custom properties in their wire form, the body), so REST receivers read
// it; what REST has no place for is kept beside it (Message.Types,
// Message.AMQP) so AMQP receivers get it back as sent.

// Message annotations and delivery annotations Service Bus uses.
const (
	annLockToken             wire.Symbol = "x-opt-lock-token"
	annSequenceNumber        wire.Symbol = "x-opt-sequence-number"
	annEnqueueSequenceNumber wire.Symbol = "x-opt-enqueue-sequence-number"
	annEnqueuedTime          wire.Symbol = "x-opt-enqueued-time"
	annLockedUntil           wire.Symbol = "x-opt-locked-until"
	annPartitionKey          wire.Symbol = "x-opt-partition-key"
	annViaPartitionKey       wire.Symbol = "x-opt-via-partition-key"
	annScheduledEnqueueTime  wire.Symbol = "x-opt-scheduled-enqueue-time"
	annMessageState          wire.Symbol = "x-opt-message-state"
	annDeadLetterSource      wire.Symbol = "x-opt-deadletter-source"
)

// brokerAnnotations are the broker's to set: a sender's values are not
// kept.
var brokerAnnotations = map[wire.Symbol]bool{
	annLockToken: true, annSequenceNumber: true, annEnqueueSequenceNumber: true, annEnqueuedTime: true,
	annLockedUntil: true, annPartitionKey: true, annViaPartitionKey: true, annScheduledEnqueueTime: true,
	annMessageState: true, annDeadLetterSource: true,
}

// Type tags of custom properties whose wire form does not tell their AMQP
// type. A string ("quoted"), a boolean and a long (bare digits) need none.
const (
	tagByte      = "i8"
	tagShort     = "i16"
	tagInt       = "i32"
	tagUbyte     = "u8"
	tagUshort    = "u16"
	tagUint      = "u32"
	tagUlong     = "u64"
	tagFloat     = "f32"
	tagDouble    = "f64"
	tagTimestamp = "ts"
	tagUUID      = "uuid"
	tagBinary    = "bin"
	tagChar      = "char"
	tagSymbol    = "sym"
)

// propertyWire renders an AMQP application-property value in the wire
// form REST uses (strings quoted, numbers and booleans bare) and the tag
// that restores its type. ok is false for a value a custom property can't
// hold (lists, maps, described values).
func propertyWire(v any) (w, tag string, ok bool) {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x), "", true
	case bool:
		return strconv.FormatBool(x), "", true
	case int64:
		return strconv.FormatInt(x, 10), "", true
	case int:
		return strconv.Itoa(x), "", true
	case int32:
		return strconv.FormatInt(int64(x), 10), tagInt, true
	case int16:
		return strconv.FormatInt(int64(x), 10), tagShort, true
	case int8:
		return strconv.FormatInt(int64(x), 10), tagByte, true
	case uint8:
		return strconv.FormatUint(uint64(x), 10), tagUbyte, true
	case uint16:
		return strconv.FormatUint(uint64(x), 10), tagUshort, true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), tagUint, true
	case uint64:
		return strconv.FormatUint(x, 10), tagUlong, true
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), tagFloat, true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), tagDouble, true
	case time.Time:
		return strconv.Quote(x.UTC().Format(time.RFC3339Nano)), tagTimestamp, true
	case wire.UUID:
		return strconv.Quote(x.String()), tagUUID, true
	case []byte:
		return strconv.Quote(base64.StdEncoding.EncodeToString(x)), tagBinary, true
	case wire.Char:
		return strconv.Quote(string(rune(x))), tagChar, true
	case wire.Symbol:
		return strconv.Quote(string(x)), tagSymbol, true
	}
	return "", "", false
}

// propertyValue is the AMQP value of a stored custom property: typed by
// its tag, else as a filter reads it (string, long, double, boolean).
func propertyValue(w, tag string) any {
	if tag != "" {
		if v, ok := taggedValue(w, tag); ok {
			return v
		}
	}
	v := wireValue(w)
	switch v.Kind {
	case sqlfilter.Int:
		return v.I
	case sqlfilter.Float:
		return v.F
	case sqlfilter.Bool:
		return v.B
	}
	return v.S
}

func taggedValue(w, tag string) (any, bool) {
	signed := func(bits int) (int64, bool) {
		n, err := strconv.ParseInt(w, 10, bits)
		return n, err == nil
	}
	unsigned := func(bits int) (uint64, bool) {
		n, err := strconv.ParseUint(w, 10, bits)
		return n, err == nil
	}
	switch tag {
	case tagByte:
		n, ok := signed(8)
		return int8(n), ok
	case tagShort:
		n, ok := signed(16)
		return int16(n), ok
	case tagInt:
		n, ok := signed(32)
		return int32(n), ok
	case tagUbyte:
		n, ok := unsigned(8)
		return uint8(n), ok
	case tagUshort:
		n, ok := unsigned(16)
		return uint16(n), ok
	case tagUint:
		n, ok := unsigned(32)
		return uint32(n), ok
	case tagUlong:
		return unsigned(64)
	case tagFloat:
		f, err := strconv.ParseFloat(w, 32)
		return float32(f), err == nil
	case tagDouble:
		f, err := strconv.ParseFloat(w, 64)
		return f, err == nil
	}
	s, err := strconv.Unquote(w)
	if err != nil {
		return nil, false
	}
	switch tag {
	case tagTimestamp:
		t, err := time.Parse(time.RFC3339Nano, s)
		return t, err == nil
	case tagUUID:
		u, err := wire.ParseUUID(s)
		return u, err == nil
	case tagBinary:
		b, err := base64.StdEncoding.DecodeString(s)
		return b, err == nil
	case tagChar:
		r := []rune(s)
		return wire.Char(r[0]), len(r) == 1
	case tagSymbol:
		return wire.Symbol(s), true
	}
	return nil, false
}

// sentMessage is an AMQP message as a sender gave it, converted for the
// store.
type sentMessage struct {
	m *Message
	// scheduled is x-opt-scheduled-enqueue-time (zero when absent).
	scheduled time.Time
}

// fromAMQP converts a message an AMQP client sent. A *wire.Error says
// why it cannot be stored.
func fromAMQP(w *wire.Message) (sentMessage, error) {
	m := &Message{User: map[string]string{}}
	extra := &wire.Message{}
	var out sentMessage
	if p := w.Properties; p != nil {
		m.Props.MessageID = wire.MessageIDString(p.MessageID)
		m.Props.CorrelationID = wire.MessageIDString(p.CorrelationID)
		m.Props.To, m.Props.Label, m.Props.ReplyTo = p.To, p.Subject, p.ReplyTo
		m.Props.ContentType = string(p.ContentType)
		m.Props.SessionID, m.Props.ReplyToSessionID = p.GroupID, p.ReplyToGroupID
		x := &wire.Properties{UserID: p.UserID, ContentEncoding: p.ContentEncoding, AbsoluteExpiryTime: p.AbsoluteExpiryTime,
			CreationTime: p.CreationTime, GroupSequence: p.GroupSequence}
		if _, isString := p.MessageID.(string); !isString {
			x.MessageID = p.MessageID
		}
		if _, isString := p.CorrelationID.(string); !isString {
			x.CorrelationID = p.CorrelationID
		}
		if x.MessageID != nil || x.CorrelationID != nil || x.UserID != nil || x.ContentEncoding != "" ||
			!x.AbsoluteExpiryTime.IsZero() || !x.CreationTime.IsZero() || x.GroupSequence != 0 {
			extra.Properties = x
		}
	}
	if h := w.Header; h != nil {
		if h.TTL > 0 {
			secs := h.TTL.Seconds()
			m.Props.TimeToLive = &secs
		}
		if h.Durable || h.FirstAcquirer || (h.Priority != 4 && h.Priority != 0) {
			extra.Header = &wire.Header{Durable: h.Durable, Priority: h.Priority, FirstAcquirer: h.FirstAcquirer}
		}
	}
	for _, kv := range w.Annotations {
		key, ok := kv.Key.(wire.Symbol)
		if !ok {
			if s, isString := kv.Key.(string); isString {
				key = wire.Symbol(s)
			} else {
				continue // numeric keys are reserved; none is defined
			}
		}
		switch key {
		case annPartitionKey:
			m.Props.PartitionKey = annotationString(kv.Value)
		case annViaPartitionKey:
			m.Props.ViaPartitionKey = annotationString(kv.Value)
		case annScheduledEnqueueTime:
			if t, ok := wire.AsTime(kv.Value); ok {
				out.scheduled = t
			}
		default:
			if !brokerAnnotations[key] {
				extra.Annotations = append(extra.Annotations, wire.KV{Key: key, Value: kv.Value})
			}
		}
	}
	for _, kv := range w.ApplicationProperties {
		var name string
		switch k := kv.Key.(type) {
		case string:
			name = k
		case wire.Symbol:
			name = string(k)
		default:
			return out, wire.Errorf("amqp:invalid-field", "An application property has a %T key; keys must be strings.", kv.Key)
		}
		if kv.Value == nil {
			continue
		}
		wv, tag, ok := propertyWire(kv.Value)
		if !ok {
			return out, wire.Errorf("amqp:invalid-field", "The application property '%s' is a %T; Service Bus properties are strings, numbers, booleans, timestamps, uuids or binary.", name, kv.Value)
		}
		m.User[name] = wv
		if tag != "" {
			if m.Types == nil {
				m.Types = map[string]string{}
			}
			m.Types[name] = tag
		}
	}
	switch {
	case len(w.Data) == 1 && !w.HasValue && len(w.Sequence) == 0:
		m.Body = w.Data[0]
	case w.HasValue:
		switch v := w.Value.(type) {
		case []byte:
			m.Body = v
		case string:
			m.Body = []byte(v)
		default:
			b, err := wire.Append(nil, v)
			if err != nil {
				return out, wire.Errorf("amqp:decode-error", "The amqp-value body cannot be stored: %v.", err)
			}
			m.Body = b
		}
		extra.Value, extra.HasValue = w.Value, true
	case len(w.Sequence) > 0:
		extra.Sequence = w.Sequence
		for _, s := range w.Sequence {
			b, err := wire.AppendList(nil, s)
			if err != nil {
				return out, wire.Errorf("amqp:decode-error", "The amqp-sequence body cannot be stored: %v.", err)
			}
			m.Body = append(m.Body, b...)
		}
	case len(w.Data) > 1:
		m.Body = w.Body()
		extra.Data = w.Data
	}
	// (A message without a body section is stored with an empty body and
	// received with one empty data section, the body AMQP requires.)
	if extra.Header != nil || extra.Properties != nil || extra.Annotations != nil || extra.HasValue || extra.Sequence != nil || extra.Data != nil {
		b, err := extra.Marshal()
		if err != nil {
			return out, wire.Errorf("amqp:decode-error", "The message cannot be stored: %v.", err)
		}
		m.AMQP = b
	}
	out.m = m
	return out, nil
}

func annotationString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case wire.Symbol:
		return string(s)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// delivery is what a receiver is told beyond the stored message.
type delivery struct {
	lockToken   wire.UUID // zero: no lock (receive-and-delete, peek)
	lockedUntil time.Time
}

// toAMQP builds the AMQP message a receiver gets.
func toAMQP(m *Message, d delivery) *wire.Message {
	out := &wire.Message{}
	var extra *wire.Message
	if len(m.AMQP) > 0 {
		extra, _ = wire.ParseMessage(m.AMQP)
	}
	if extra == nil {
		extra = &wire.Message{}
	}
	h := &wire.Header{Priority: 4}
	if eh := extra.Header; eh != nil {
		h.Durable, h.Priority, h.FirstAcquirer = eh.Durable, eh.Priority, eh.FirstAcquirer
	}
	if m.DeliveryCount > 1 {
		h.DeliveryCount = uint32(m.DeliveryCount - 1)
	}
	if !m.ExpiresAt.IsZero() {
		h.TTL = m.ExpiresAt.Sub(m.Enqueued)
	}
	out.Header = h

	if d.lockToken != (wire.UUID{}) {
		out.DeliveryAnnotations = wire.Map{{Key: annLockToken, Value: d.lockToken}}
	}
	ann := wire.Map{
		{Key: annSequenceNumber, Value: int64(m.SequenceNumber)},
		{Key: annEnqueueSequenceNumber, Value: int64(m.EnqueuedSequenceNumber)},
		{Key: annEnqueuedTime, Value: m.Enqueued},
	}
	if !d.lockedUntil.IsZero() {
		ann = append(ann, wire.KV{Key: annLockedUntil, Value: d.lockedUntil})
	}
	if m.Props.PartitionKey != "" {
		ann = append(ann, wire.KV{Key: annPartitionKey, Value: m.Props.PartitionKey})
	}
	if m.Props.ViaPartitionKey != "" {
		ann = append(ann, wire.KV{Key: annViaPartitionKey, Value: m.Props.ViaPartitionKey})
	}
	if m.Deferred {
		ann = append(ann, wire.KV{Key: annMessageState, Value: int64(1)})
	}
	if at, err := time.Parse(time.RFC1123, m.Props.ScheduledEnqueueTimeUtc); err == nil {
		ann = append(ann, wire.KV{Key: annScheduledEnqueueTime, Value: at})
	}
	out.Annotations = append(ann, extra.Annotations...)

	p := &wire.Properties{To: m.Props.To, Subject: m.Props.Label, ReplyTo: m.Props.ReplyTo,
		ContentType: wire.Symbol(m.Props.ContentType), GroupID: m.Props.SessionID, ReplyToGroupID: m.Props.ReplyToSessionID}
	if m.Props.MessageID != "" {
		p.MessageID = m.Props.MessageID
	}
	if m.Props.CorrelationID != "" {
		p.CorrelationID = m.Props.CorrelationID
	}
	if ep := extra.Properties; ep != nil {
		if ep.MessageID != nil {
			p.MessageID = ep.MessageID
		}
		if ep.CorrelationID != nil {
			p.CorrelationID = ep.CorrelationID
		}
		p.UserID, p.ContentEncoding, p.AbsoluteExpiryTime = ep.UserID, ep.ContentEncoding, ep.AbsoluteExpiryTime
		p.CreationTime, p.GroupSequence = ep.CreationTime, ep.GroupSequence
	}
	out.Properties = p

	if len(m.User) > 0 {
		names := make([]string, 0, len(m.User))
		for k := range m.User {
			names = append(names, k)
		}
		slices.Sort(names)
		out.ApplicationProperties = make(wire.Map, 0, len(names))
		for _, k := range names {
			out.ApplicationProperties = append(out.ApplicationProperties, wire.KV{Key: k, Value: propertyValue(m.User[k], m.Types[k])})
		}
	}

	switch {
	case extra.HasValue:
		out.Value, out.HasValue = extra.Value, true
	case len(extra.Sequence) > 0:
		out.Sequence = extra.Sequence
	case len(extra.Data) > 0:
		out.Data = extra.Data
	default:
		out.Data = [][]byte{m.Body}
	}
	return out
}

// encodeReceived encodes the message a receiver gets. Its header is
// written with every field, delivery-count 0 included: wire.Header leaves
// out fields at their defaults, and the JavaScript SDK (rhea) then reports
// deliveryCount as undefined, where Service Bus always sends it.
func encodeReceived(m *Message, d delivery) ([]byte, error) {
	w := toAMQP(m, d)
	h := w.Header
	w.Header = nil
	var ttl any
	if h.TTL > 0 {
		ttl = uint32(min(h.TTL.Milliseconds(), 0xffffffff))
	}
	b, err := wire.AppendList(append([]byte(nil), wire.TypeDescribed, wire.TypeSmallUlong, 0x70),
		[]any{h.Durable, h.Priority, ttl, h.FirstAcquirer, h.DeliveryCount})
	if err != nil {
		return nil, err
	}
	return w.AppendAMQP(b)
}

// lockTokenTag is the delivery tag of a lock token: the uuid in .NET's
// Guid byte order (the first three groups little-endian), which the SDKs
// turn back.
func lockTokenTag(u wire.UUID) []byte {
	return []byte{u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6],
		u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]}
}
