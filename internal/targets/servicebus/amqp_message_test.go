package servicebus

import (
	"reflect"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
)

// stored passes a message through the store's form: headers and body, as
// JetStream keeps them.
func stored(t *testing.T, m *Message) *Message {
	t.Helper()
	return decodeStored(m.header(), m.Body)
}

// TestAMQPMessageRoundTrip: what an AMQP sender sets comes back to an AMQP
// receiver with its types; REST's view of it is the wire form.
func TestAMQPMessageRoundTrip(t *testing.T) {
	when := time.UnixMilli(1700000000123).UTC()
	id := wire.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	props := wire.Map{
		{Key: "s", Value: "text \"quoted\"\n"}, {Key: "l", Value: int64(-5)}, {Key: "i", Value: int32(7)}, {Key: "sh", Value: int16(-3)},
		{Key: "by", Value: int8(2)}, {Key: "ub", Value: uint8(250)}, {Key: "us", Value: uint16(65000)}, {Key: "ui", Value: uint32(4000000000)},
		{Key: "ul", Value: uint64(1) << 63}, {Key: "f", Value: float32(1.5)}, {Key: "d", Value: 3.0}, {Key: "b", Value: false},
		{Key: "t", Value: when}, {Key: "u", Value: id}, {Key: "bin", Value: []byte{0, 1, 2}}, {Key: "c", Value: wire.Char('é')},
		{Key: "sym", Value: wire.Symbol("a-symbol")},
	}
	for _, tc := range []struct {
		name string
		in   *wire.Message
	}{
		{"data", &wire.Message{
			Header:     &wire.Header{Durable: true, Priority: 7, TTL: 90 * time.Second},
			Properties: &wire.Properties{MessageID: id, CorrelationID: uint64(42), UserID: []byte("me"), Subject: "s", To: "to", ReplyTo: "rt", ContentType: "text/plain", GroupID: "g", ReplyToGroupID: "rg", CreationTime: when},
			Annotations: wire.Map{{Key: wire.Symbol("custom"), Value: "kept"}, {Key: annSequenceNumber, Value: int64(99)},
				{Key: annPartitionKey, Value: "pk"}},
			ApplicationProperties: props,
			Data:                  [][]byte{[]byte("body")},
		}},
		{"value", &wire.Message{Properties: &wire.Properties{MessageID: "m"}, Value: wire.Map{{Key: "k", Value: int32(1)}}, HasValue: true}},
		{"sequence", &wire.Message{Sequence: [][]any{{"a", int64(1)}}}},
		{"several data sections", &wire.Message{Data: [][]byte{[]byte("a"), []byte("b")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm, err := fromAMQP(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if err := stamp(sbresource.DecodeSettings(nil), sm.m, when); err != nil {
				t.Fatal(err)
			}
			m := stored(t, sm.m)
			m.SequenceNumber, m.EnqueuedSequenceNumber, m.DeliveryCount = 9, 9, 3
			out := toAMQP(m, delivery{lockToken: id, lockedUntil: when})
			if out.Header.DeliveryCount != 2 {
				t.Errorf("delivery-count = %d, want 2", out.Header.DeliveryCount)
			}
			if got, _ := out.Annotations.Get(string(annSequenceNumber)); got != int64(9) {
				t.Errorf("x-opt-sequence-number = %#v", got)
			}
			if got, _ := out.DeliveryAnnotations.Get(string(annLockToken)); got != id {
				t.Errorf("x-opt-lock-token = %#v", got)
			}
			in := tc.in
			if in.HasValue != out.HasValue || !reflect.DeepEqual(in.Value, out.Value) || !reflect.DeepEqual(in.Sequence, out.Sequence) {
				t.Errorf("body: value %#v sequence %#v, want %#v %#v", out.Value, out.Sequence, in.Value, in.Sequence)
			}
			if len(in.Data) > 0 && !reflect.DeepEqual(in.Data, out.Data) {
				t.Errorf("data = %q, want %q", out.Data, in.Data)
			}
			if in.Properties != nil && (out.Properties.MessageID != in.Properties.MessageID || out.Properties.CorrelationID != in.Properties.CorrelationID) {
				t.Errorf("ids = %#v %#v", out.Properties.MessageID, out.Properties.CorrelationID)
			}
			if tc.name != "data" {
				return
			}
			for _, kv := range props {
				got, _ := out.ApplicationProperties.Get(kv.Key.(string))
				if !reflect.DeepEqual(got, kv.Value) {
					t.Errorf("property %s = %#v (%T), want %#v (%T)", kv.Key, got, got, kv.Value, kv.Value)
				}
			}
			p := out.Properties
			if string(p.UserID) != "me" || p.Subject != "s" || p.To != "to" || p.ReplyTo != "rt" || p.ContentType != "text/plain" ||
				p.GroupID != "g" || p.ReplyToGroupID != "rg" || !p.CreationTime.Equal(when) {
				t.Errorf("properties = %+v", p)
			}
			if h := out.Header; !h.Durable || h.Priority != 7 || h.TTL != 90*time.Second {
				t.Errorf("header = %+v", h)
			}
			if v, _ := out.Annotations.Get("custom"); v != "kept" {
				t.Errorf("custom annotation = %#v", v)
			}
			if v, _ := out.Annotations.Get(string(annPartitionKey)); v != "pk" {
				t.Errorf("partition key = %#v", v)
			}
			// REST's view: the wire forms.
			if m.User["s"] != `"text \"quoted\"\n"` || m.User["l"] != "-5" || m.User["b"] != "false" || m.Props.Label != "s" ||
				m.Props.MessageID != "01020304-0506-0708-090a-0b0c0d0e0f10" || m.Props.CorrelationID != "42" || m.Props.PartitionKey != "pk" {
				t.Errorf("REST view: %v %+v", m.User, m.Props)
			}
		})
	}
	if _, err := fromAMQP(&wire.Message{ApplicationProperties: wire.Map{{Key: "list", Value: []any{1}}}}); err == nil {
		t.Error("a list property was accepted")
	}
}

// TestEncodeReceivedHeader: every header field is on the wire, a zero
// delivery-count included (rhea reports an absent one as undefined).
func TestEncodeReceivedHeader(t *testing.T) {
	b, err := encodeReceived(&Message{Body: []byte("x"), DeliveryCount: 1}, delivery{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := wire.NewDecoder(b).Value()
	if err != nil {
		t.Fatal(err)
	}
	h, ok := v.(wire.Described)
	fields, _ := h.Value.([]any)
	if !ok || h.Descriptor != uint64(0x70) || len(fields) != 5 || fields[4] != uint32(0) {
		t.Fatalf("first section %#v, want a header with delivery-count 0", v)
	}
	m, err := wire.ParseMessage(b)
	if err != nil || string(m.Body()) != "x" || m.Header.Priority != 4 {
		t.Fatalf("ParseMessage = %+v, %v", m, err)
	}
}
