package eventhubs

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Event Hubs system properties (AMQP message annotations), as receivers see them.
const (
	PropSequenceNumber = "x-opt-sequence-number"
	PropOffset         = "x-opt-offset"
	PropEnqueuedTime   = "x-opt-enqueued-time"
	PropPartitionKey   = "x-opt-partition-key"
	PropPublisher      = "x-opt-publisher"
)

// Stored header names. The enqueued time, partition key and publisher are
// stamped at send; the sequence number and offset are the stream sequence,
// known only once JetStream stored the event, so Read derives them.
const (
	hdrEnqueued      = PropEnqueuedTime
	hdrPartitionKey  = PropPartitionKey
	hdrPublisher     = PropPublisher
	hdrContentType   = "content-type"
	hdrMessageID     = "message-id"
	hdrCorrelationID = "correlation-id"
	hdrSubject       = "subject"
	// userPrefix marks user properties: the rest of the header name is the
	// property name, query-escaped; the value is the property's JSON.
	userPrefix = "p-"
)

// Event is one stored event as a receiver sees it.
type Event struct {
	Body []byte
	// Properties are the user (application) properties: strings, numbers
	// (float64) and booleans, as the sender gave them.
	Properties    map[string]any
	ContentType   string
	MessageID     string
	CorrelationID string
	// Subject is the Service Bus "Label" broker property.
	Subject        string
	PartitionKey   string
	Publisher      string
	PartitionID    string
	SequenceNumber int64
	Offset         string
	EnqueuedTime   time.Time
}

// SystemProperties are the event's x-opt-* annotations.
func (e Event) SystemProperties() map[string]any {
	m := map[string]any{
		PropSequenceNumber: e.SequenceNumber,
		PropOffset:         e.Offset,
		PropEnqueuedTime:   e.EnqueuedTime,
	}
	if e.PartitionKey != "" {
		m[PropPartitionKey] = e.PartitionKey
	}
	if e.Publisher != "" {
		m[PropPublisher] = e.Publisher
	}
	return m
}

// incoming is one event of a send request before it is stored.
type incoming struct {
	body         []byte
	properties   map[string]json.RawMessage
	partitionKey string
	contentType  string
	broker       brokerProperties
}

// brokerProperties is the BrokerProperties JSON (header or batch member)
// fields Event Hubs keeps; the Service Bus-only ones are ignored.
type brokerProperties struct {
	PartitionKey  string `json:"PartitionKey"`
	MessageID     string `json:"MessageId"`
	CorrelationID string `json:"CorrelationId"`
	Label         string `json:"Label"`
	ContentType   string `json:"ContentType"`
}

// message builds the stored message.
func (in *incoming) message(subj, enqueued, publisher string) *nats.Msg {
	hdr := make(nats.Header, 2+len(in.properties))
	hdr[hdrEnqueued] = []string{enqueued}
	if in.partitionKey != "" {
		hdr[hdrPartitionKey] = []string{in.partitionKey}
	}
	if publisher != "" {
		hdr[hdrPublisher] = []string{publisher}
	}
	ct := in.contentType
	if in.broker.ContentType != "" {
		ct = in.broker.ContentType
	}
	set := func(k, v string) {
		if v != "" {
			hdr[k] = []string{v}
		}
	}
	set(hdrContentType, ct)
	set(hdrMessageID, in.broker.MessageID)
	set(hdrCorrelationID, in.broker.CorrelationID)
	set(hdrSubject, in.broker.Label)
	for k, v := range in.properties {
		hdr[userPrefix+url.QueryEscape(k)] = []string{string(v)}
	}
	return &nats.Msg{Subject: subj, Data: in.body, Header: hdr}
}

// decode turns a stored message back into an Event.
func decode(msg *jetstream.RawStreamMsg, partition int) Event {
	return decodeParts(msg.Header, msg.Data, msg.Sequence, msg.Time, partition)
}

// decodeParts turns a stored message's parts back into an Event.
func decodeParts(hdr nats.Header, data []byte, streamSeq uint64, stored time.Time, partition int) Event {
	e := Event{
		Body: data, PartitionID: strconv.Itoa(partition),
		SequenceNumber: int64(streamSeq) - 1, EnqueuedTime: stored.UTC(),
	}
	e.Offset = strconv.FormatInt(e.SequenceNumber, 10)
	for k, vs := range hdr {
		if len(vs) == 0 {
			continue
		}
		v := vs[0]
		if name, ok := strings.CutPrefix(k, userPrefix); ok {
			if un, err := url.QueryUnescape(name); err == nil {
				name = un
			}
			var val any
			if json.Unmarshal([]byte(v), &val) != nil {
				val = v
			}
			if e.Properties == nil {
				e.Properties = map[string]any{}
			}
			e.Properties[name] = val
			continue
		}
		switch k {
		case hdrEnqueued:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				e.EnqueuedTime = t
			}
		case hdrPartitionKey:
			e.PartitionKey = v
		case hdrPublisher:
			e.Publisher = v
		case hdrContentType:
			e.ContentType = v
		case hdrMessageID:
			e.MessageID = v
		case hdrCorrelationID:
			e.CorrelationID = v
		case hdrSubject:
			e.Subject = v
		}
	}
	return e
}
