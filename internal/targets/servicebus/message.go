package servicebus

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/targets/servicebus/sqlfilter"
)

// BrokerProperties is the JSON of the BrokerProperties header: what a
// sender may set, and what a receiver is told.
type BrokerProperties struct {
	ContentType             string   `json:"ContentType,omitempty"`
	CorrelationID           string   `json:"CorrelationId,omitempty"`
	Label                   string   `json:"Label,omitempty"`
	MessageID               string   `json:"MessageId,omitempty"`
	PartitionKey            string   `json:"PartitionKey,omitempty"`
	ReplyTo                 string   `json:"ReplyTo,omitempty"`
	ReplyToSessionID        string   `json:"ReplyToSessionId,omitempty"`
	ScheduledEnqueueTimeUtc string   `json:"ScheduledEnqueueTimeUtc,omitempty"`
	SessionID               string   `json:"SessionId,omitempty"`
	TimeToLive              *float64 `json:"TimeToLive,omitempty"`
	To                      string   `json:"To,omitempty"`
	ViaPartitionKey         string   `json:"ViaPartitionKey,omitempty"`
}

// receivedProperties adds what the broker reports on receive.
type receivedProperties struct {
	BrokerProperties
	DeliveryCount          int     `json:"DeliveryCount"`
	EnqueuedSequenceNumber uint64  `json:"EnqueuedSequenceNumber"`
	EnqueuedTimeUtc        string  `json:"EnqueuedTimeUtc"`
	LockToken              string  `json:"LockToken,omitempty"`
	LockedUntilUtc         string  `json:"LockedUntilUtc,omitempty"`
	SequenceNumber         uint64  `json:"SequenceNumber"`
	State                  string  `json:"State"`
	TimeToLive             float64 `json:"TimeToLive"`
}

// Message is a Service Bus message as stored and received.
type Message struct {
	Props BrokerProperties
	// User holds custom properties as sent on the wire: strings in double
	// quotes, numbers and booleans bare (so they come back as sent).
	User     map[string]string
	Body     []byte
	Enqueued time.Time
	// ExpiresAt is the enqueue time plus the effective time to live (zero
	// for never).
	ExpiresAt time.Time
	// Set on receive.
	SequenceNumber         uint64
	EnqueuedSequenceNumber uint64
	DeliveryCount          int
	LockToken              string
	LockedUntil            time.Time
	// Deferred is set on a deferred message received by sequence number.
	Deferred bool
	// Types is the AMQP type of custom properties an AMQP sender set whose
	// wire form alone does not say it (an int32, a timestamp, a uuid…):
	// name → type tag (see amqp_message.go). REST senders leave it empty.
	Types map[string]string
	// AMQP is what an AMQP sender set that has no REST counterpart (ids
	// that are not strings, user-id, creation time, header flags, custom
	// message annotations, a body other than one data section), as an
	// AMQP-encoded message; nil for REST senders.
	AMQP []byte
	// DeliveryCountBase counts the deliveries before the message was
	// stored again (an abandon that modified its properties); JetStream's
	// count of the stored copy is added to it.
	DeliveryCountBase int
}

// Stored header names. User properties are "sb-u-" + the escaped name.
const (
	hdrProps    = "sb-props"
	hdrEnqueued = "sb-enq"
	hdrExpires  = "sb-exp"
	hdrOrigSeq  = "sb-oseq"
	hdrTypes    = "sb-types"
	hdrAMQP     = "sb-amqp"
	hdrBase     = "sb-dcb"
	userPrefix  = "sb-u-"
)

// setUser sets a custom property in its wire form; an AMQP type recorded
// for the old value no longer applies.
func (m *Message) setUser(name, wire string) {
	if m.User == nil {
		m.User = map[string]string{}
	}
	m.User[name] = wire
	delete(m.Types, name)
}

func (m *Message) header() nats.Header {
	h := nats.Header{}
	props, _ := json.Marshal(m.Props)
	h.Set(hdrProps, string(props))
	h.Set(hdrEnqueued, m.Enqueued.UTC().Format(time.RFC3339Nano))
	if !m.ExpiresAt.IsZero() {
		h.Set(hdrExpires, m.ExpiresAt.UTC().Format(time.RFC3339Nano))
	}
	if m.EnqueuedSequenceNumber != 0 {
		h.Set(hdrOrigSeq, strconv.FormatUint(m.EnqueuedSequenceNumber, 10))
	}
	for k, v := range m.User {
		h.Set(userPrefix+url.QueryEscape(k), v)
	}
	if len(m.Types) > 0 {
		types := url.Values{}
		for k, v := range m.Types {
			if _, ok := m.User[k]; ok {
				types.Set(k, v)
			}
		}
		if len(types) > 0 {
			h.Set(hdrTypes, types.Encode())
		}
	}
	if len(m.AMQP) > 0 {
		h.Set(hdrAMQP, base64.StdEncoding.EncodeToString(m.AMQP))
	}
	if m.DeliveryCountBase > 0 {
		h.Set(hdrBase, strconv.Itoa(m.DeliveryCountBase))
	}
	return h
}

// decodeStored reads a stored message's headers and body (what any copy
// of it carries, whoever reads it).
func decodeStored(h nats.Header, data []byte) *Message {
	m := &Message{Body: data, User: map[string]string{}}
	_ = json.Unmarshal([]byte(h.Get(hdrProps)), &m.Props)
	m.Enqueued, _ = time.Parse(time.RFC3339Nano, h.Get(hdrEnqueued))
	m.ExpiresAt, _ = time.Parse(time.RFC3339Nano, h.Get(hdrExpires))
	m.EnqueuedSequenceNumber, _ = strconv.ParseUint(h.Get(hdrOrigSeq), 10, 64)
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, userPrefix); ok && len(vs) > 0 {
			if un, err := url.QueryUnescape(name); err == nil {
				name = un
			}
			m.User[name] = vs[0]
		}
	}
	if t := h.Get(hdrTypes); t != "" {
		if types, err := url.ParseQuery(t); err == nil {
			m.Types = make(map[string]string, len(types))
			for k, v := range types {
				m.Types[k] = v[0]
			}
		}
	}
	if a := h.Get(hdrAMQP); a != "" {
		m.AMQP, _ = base64.StdEncoding.DecodeString(a)
	}
	m.DeliveryCountBase, _ = strconv.Atoi(h.Get(hdrBase))
	return m
}

func decodeMessage(msg jetstream.Msg) (*Message, *jetstream.MsgMetadata) {
	m := decodeStored(msg.Headers(), msg.Data())
	md, err := msg.Metadata()
	if err != nil {
		md = &jetstream.MsgMetadata{NumDelivered: 1}
	}
	m.SequenceNumber = md.Sequence.Stream
	if m.EnqueuedSequenceNumber == 0 {
		m.EnqueuedSequenceNumber = m.SequenceNumber
	}
	m.DeliveryCount = m.DeliveryCountBase + int(md.NumDelivered)
	return m, md
}

// writeHeaders sets the receive response headers: BrokerProperties and the
// custom properties.
func (m *Message) writeHeaders(h http.Header, dlq bool) {
	rp := receivedProperties{BrokerProperties: m.Props, DeliveryCount: m.DeliveryCount,
		EnqueuedSequenceNumber: m.EnqueuedSequenceNumber, EnqueuedTimeUtc: m.Enqueued.UTC().Format(http.TimeFormat),
		SequenceNumber: m.SequenceNumber, State: "Active", LockToken: m.LockToken}
	if dlq {
		rp.State = "Active" // the dead-letter queue's messages are active there
	}
	if !m.LockedUntil.IsZero() {
		rp.LockedUntilUtc = m.LockedUntil.UTC().Format(http.TimeFormat)
	}
	rp.TimeToLive = float64(maxTTLSeconds)
	if !m.ExpiresAt.IsZero() {
		rp.TimeToLive = m.ExpiresAt.Sub(m.Enqueued).Seconds()
	}
	rp.BrokerProperties.TimeToLive = nil
	b, _ := json.Marshal(rp)
	h.Set("BrokerProperties", string(b))
	for k, v := range m.User {
		h.Set(k, v)
	}
	ct := m.Props.ContentType
	if ct == "" {
		ct = "application/atom+xml;type=entry;charset=utf-8"
	}
	h.Set("Content-Type", ct)
}

// maxTTLSeconds is TimeSpan.MaxValue in seconds, reported for messages
// that never expire.
const maxTTLSeconds = 922337203685

// effectiveTTL is the smaller of the message's and the entity's time to
// live, as Service Bus applies them.
func effectiveTTL(msgTTL *float64, entity time.Duration) (time.Duration, error) {
	ttl := entity
	if msgTTL != nil {
		if *msgTTL <= 0 || math.IsNaN(*msgTTL) {
			return 0, fmt.Errorf("TimeToLive must be a positive number of seconds, got %v", *msgTTL)
		}
		if secs := *msgTTL; secs < float64(math.MaxInt64)/float64(time.Second) {
			if d := time.Duration(secs * float64(time.Second)); d < ttl {
				ttl = d
			}
		}
	}
	return ttl, nil
}

// filterProps adapts a message to sqlfilter.Properties.
type filterProps struct{ m *Message }

func (f filterProps) User(name string) (sqlfilter.Value, bool) {
	wire, ok := f.m.User[name]
	if !ok {
		for k, v := range f.m.User {
			if strings.EqualFold(k, name) {
				wire, ok = v, true
				break
			}
		}
	}
	if !ok {
		return sqlfilter.Value{}, false
	}
	return wireValue(wire), true
}

// wireValue types a custom property as sent: "quoted" is a string, bare
// true/false a boolean, a bare number a number, anything else a string.
func wireValue(wire string) sqlfilter.Value {
	w := strings.TrimSpace(wire)
	if len(w) >= 2 && w[0] == '"' && w[len(w)-1] == '"' {
		if s, err := strconv.Unquote(w); err == nil {
			return sqlfilter.Str(s)
		}
		return sqlfilter.Str(w[1 : len(w)-1])
	}
	switch strings.ToLower(w) {
	case "true":
		return sqlfilter.Boolean(true)
	case "false":
		return sqlfilter.Boolean(false)
	}
	if i, err := strconv.ParseInt(w, 10, 64); err == nil {
		return sqlfilter.Num(i)
	}
	if f, err := strconv.ParseFloat(w, 64); err == nil {
		return sqlfilter.Decimal(f)
	}
	return sqlfilter.Str(wire)
}

func (f filterProps) System(name string) (sqlfilter.Value, bool) {
	p := f.m.Props
	var s string
	switch strings.ToLower(name) {
	case "messageid":
		s = p.MessageID
	case "correlationid":
		s = p.CorrelationID
	case "label", "subject":
		s = p.Label
	case "to":
		s = p.To
	case "replyto":
		s = p.ReplyTo
	case "sessionid":
		s = p.SessionID
	case "replytosessionid":
		s = p.ReplyToSessionID
	case "contenttype":
		s = p.ContentType
	case "partitionkey":
		s = p.PartitionKey
	default:
		return sqlfilter.Value{}, false
	}
	if s == "" {
		return sqlfilter.Value{}, false
	}
	return sqlfilter.Str(s), true
}
