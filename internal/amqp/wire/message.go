package wire

import (
	"fmt"
	"time"
)

// Section descriptor codes.
const (
	codeHeader                = 0x70
	codeDeliveryAnnotations   = 0x71
	codeMessageAnnotations    = 0x72
	codeProperties            = 0x73
	codeApplicationProperties = 0x74
	codeData                  = 0x75
	codeSequence              = 0x76
	codeValue                 = 0x77
	codeFooter                = 0x78
)

// BatchMessageFormat is the message-format of an Azure batch: the envelope
// of the first message and one data section per encoded message.
const BatchMessageFormat uint32 = 0x80013700

// Header is the header section.
type Header struct {
	Durable       bool
	Priority      uint8 // 4 when absent
	TTL           time.Duration
	FirstAcquirer bool
	DeliveryCount uint32
}

// Properties is the properties section.
type Properties struct {
	MessageID          any // string, uint64, UUID or []byte, as sent
	UserID             []byte
	To                 string
	Subject            string
	ReplyTo            string
	CorrelationID      any
	ContentType        Symbol
	ContentEncoding    Symbol
	AbsoluteExpiryTime time.Time
	CreationTime       time.Time
	GroupID            string
	GroupSequence      uint32
	ReplyToGroupID     string
}

// Message is an annotated AMQP message. The body is one of Data (one or
// more data sections), Value (amqp-value, when HasValue) or Sequence.
type Message struct {
	Header                *Header
	DeliveryAnnotations   Map
	Annotations           Map
	Properties            *Properties
	ApplicationProperties Map
	Data                  [][]byte
	Value                 any
	HasValue              bool
	Sequence              [][]any
	Footer                Map
}

// AppendAMQP implements Marshaler: the message's sections in order.
func (m *Message) AppendAMQP(b []byte) ([]byte, error) {
	var err error
	if h := m.Header; h != nil {
		var dur, prio, ttl, fa, dc any
		if h.Durable {
			dur = true
		}
		if h.Priority != 0 && h.Priority != 4 {
			prio = h.Priority
		}
		if h.TTL > 0 {
			ttl = uint32(min(h.TTL.Milliseconds(), 0xffffffff))
		}
		if h.FirstAcquirer {
			fa = true
		}
		// delivery-count is always written: the JavaScript SDKs read an
		// absent one as undefined, not as its default 0.
		dc = h.DeliveryCount
		if b, err = appendComposite(b, codeHeader, []any{dur, prio, ttl, fa, dc}); err != nil {
			return b, err
		}
	}
	if b, err = appendMapSection(b, codeDeliveryAnnotations, m.DeliveryAnnotations); err != nil {
		return b, err
	}
	if b, err = appendMapSection(b, codeMessageAnnotations, m.Annotations); err != nil {
		return b, err
	}
	if p := m.Properties; p != nil {
		var uid, ct, ce, exp, ct2, gs any
		if p.UserID != nil {
			uid = p.UserID
		}
		if p.ContentType != "" {
			ct = p.ContentType
		}
		if p.ContentEncoding != "" {
			ce = p.ContentEncoding
		}
		if !p.AbsoluteExpiryTime.IsZero() {
			exp = p.AbsoluteExpiryTime
		}
		if !p.CreationTime.IsZero() {
			ct2 = p.CreationTime
		}
		if p.GroupSequence != 0 {
			gs = p.GroupSequence
		}
		if b, err = appendComposite(b, codeProperties, []any{p.MessageID, uid, optStr(p.To), optStr(p.Subject), optStr(p.ReplyTo),
			p.CorrelationID, ct, ce, exp, ct2, optStr(p.GroupID), gs, optStr(p.ReplyToGroupID)}); err != nil {
			return b, err
		}
	}
	if b, err = appendMapSection(b, codeApplicationProperties, m.ApplicationProperties); err != nil {
		return b, err
	}
	for _, d := range m.Data {
		b = AppendBinary(append(b, TypeDescribed, TypeSmallUlong, codeData), d)
	}
	if m.HasValue {
		if b, err = Append(append(b, TypeDescribed, TypeSmallUlong, codeValue), m.Value); err != nil {
			return b, err
		}
	}
	for _, s := range m.Sequence {
		if b, err = AppendList(append(b, TypeDescribed, TypeSmallUlong, codeSequence), s); err != nil {
			return b, err
		}
	}
	return appendMapSection(b, codeFooter, m.Footer)
}

func appendMapSection(b []byte, code byte, m Map) ([]byte, error) {
	if m == nil {
		return b, nil
	}
	return appendMap(append(b, TypeDescribed, TypeSmallUlong, code), m)
}

// Marshal encodes m.
func (m *Message) Marshal() ([]byte, error) { return m.AppendAMQP(nil) }

// ParseMessage decodes an encoded message.
func ParseMessage(b []byte) (*Message, error) {
	m := &Message{}
	d := NewDecoder(b)
	for d.Len() > 0 {
		v, err := d.Value()
		if err != nil {
			return nil, fmt.Errorf("wire: message: %w", err)
		}
		sec, ok := v.(Described)
		if !ok {
			return nil, fmt.Errorf("wire: message section is %T, not described", v)
		}
		code := -1
		if n, ok := sec.Descriptor.(uint64); ok && n < 0x100 {
			code = int(n)
		} else if s, ok := sec.Descriptor.(Symbol); ok {
			code = sectionCode(s)
		}
		if err := m.setSection(code, sec.Value); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func sectionCode(s Symbol) int {
	switch s {
	case "amqp:header:list":
		return codeHeader
	case "amqp:delivery-annotations:map":
		return codeDeliveryAnnotations
	case "amqp:message-annotations:map":
		return codeMessageAnnotations
	case "amqp:properties:list":
		return codeProperties
	case "amqp:application-properties:map":
		return codeApplicationProperties
	case "amqp:data:binary":
		return codeData
	case "amqp:amqp-sequence:list":
		return codeSequence
	case "amqp:amqp-value:*":
		return codeValue
	case "amqp:footer:map":
		return codeFooter
	}
	return -1
}

func (m *Message) setSection(code int, v any) error {
	mapOf := func(what string) (Map, error) {
		switch mv := v.(type) {
		case Map:
			return mv, nil
		case nil:
			return Map{}, nil
		}
		return nil, fmt.Errorf("wire: %s section is %T, not a map", what, v)
	}
	var err error
	switch code {
	case codeHeader:
		f := &fields{what: "header", list: asList(v)}
		h := &Header{Durable: f.boolean(0), Priority: 4, FirstAcquirer: f.boolean(3), DeliveryCount: f.u32(4)}
		if p := f.u8p(1); p != nil {
			h.Priority = *p
		}
		if ttl := f.u32p(2); ttl != nil {
			h.TTL = time.Duration(*ttl) * time.Millisecond
		}
		m.Header = h
		return f.err
	case codeDeliveryAnnotations:
		m.DeliveryAnnotations, err = mapOf("delivery-annotations")
	case codeMessageAnnotations:
		m.Annotations, err = mapOf("message-annotations")
	case codeProperties:
		f := &fields{what: "properties", list: asList(v)}
		p := &Properties{MessageID: f.at(0), UserID: f.binary(1), To: f.str(2), Subject: f.str(3), ReplyTo: f.str(4),
			CorrelationID: f.at(5), ContentType: f.sym(6), ContentEncoding: f.sym(7), GroupID: f.str(10),
			GroupSequence: f.u32(11), ReplyToGroupID: f.str(12)}
		if t, ok := AsTime(f.at(8)); ok {
			p.AbsoluteExpiryTime = t
		}
		if t, ok := AsTime(f.at(9)); ok {
			p.CreationTime = t
		}
		m.Properties = p
		return f.err
	case codeApplicationProperties:
		m.ApplicationProperties, err = mapOf("application-properties")
	case codeData:
		data, ok := v.([]byte)
		if !ok {
			return fmt.Errorf("wire: data section is %T, not binary", v)
		}
		m.Data = append(m.Data, data)
	case codeSequence:
		l, ok := v.([]any)
		if !ok {
			return fmt.Errorf("wire: amqp-sequence section is %T, not a list", v)
		}
		m.Sequence = append(m.Sequence, l)
	case codeValue:
		m.Value, m.HasValue = v, true
	case codeFooter:
		m.Footer, err = mapOf("footer")
	default:
		return fmt.Errorf("wire: unknown message section %d", code)
	}
	return err
}

// Body returns the message's data sections joined (nil for a value or
// sequence body).
func (m *Message) Body() []byte {
	switch len(m.Data) {
	case 0:
		return nil
	case 1:
		return m.Data[0]
	}
	var out []byte
	for _, d := range m.Data {
		out = append(out, d...)
	}
	return out
}

// MessageIDString renders a message or correlation id as text: a UUID in
// 8-4-4-4-12 form, numbers in decimal, binary as hex.
func MessageIDString(v any) string {
	switch id := v.(type) {
	case nil:
		return ""
	case string:
		return id
	case UUID:
		return id.String()
	case uint64:
		return fmt.Sprint(id)
	case []byte:
		return fmt.Sprintf("%x", id)
	case Symbol:
		return string(id)
	}
	return fmt.Sprint(v)
}
