package servicebus

import (
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
}

// Stored header names. User properties are "sb-u-" + the escaped name.
const (
	hdrProps    = "sb-props"
	hdrEnqueued = "sb-enq"
	hdrExpires  = "sb-exp"
	hdrOrigSeq  = "sb-oseq"
	userPrefix  = "sb-u-"
)

func (m *Message) setUser(name, wire string) {
	if m.User == nil {
		m.User = map[string]string{}
	}
	m.User[name] = wire
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
	return h
}

func decodeMessage(msg jetstream.Msg) (*Message, *jetstream.MsgMetadata) {
	h := msg.Headers()
	m := &Message{Body: msg.Data(), User: map[string]string{}}
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
	md, err := msg.Metadata()
	if err != nil {
		md = &jetstream.MsgMetadata{NumDelivered: 1}
	}
	m.SequenceNumber = md.Sequence.Stream
	if m.EnqueuedSequenceNumber == 0 {
		m.EnqueuedSequenceNumber = m.SequenceNumber
	}
	m.DeliveryCount = int(md.NumDelivered)
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
