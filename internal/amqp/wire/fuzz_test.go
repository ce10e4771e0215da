package wire

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseBody feeds frame bodies to the performative parser. What it
// accepts encodes again, and that encoding parses to a performative that
// encodes the same: nothing a peer sends is read one way and echoed
// another.
func FuzzParseBody(f *testing.F) {
	one, ch, mode := uint32(1), uint16(1), SenderSettleMixed
	for _, p := range []Marshaler{
		&Open{ContainerID: "c", Hostname: "h.example", MaxFrameSize: 65536, ChannelMax: 7, HasChannelMax: true, IdleTimeout: 60000,
			OfferedCapabilities: []Symbol{"ANONYMOUS-RELAY"}, Properties: Map{{Key: Symbol("product"), Value: "x"}}},
		&Begin{RemoteChannel: &ch, NextOutgoingID: 1, IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: &one},
		&Attach{Name: "l", Handle: 1, Role: RoleReceiver, SndSettleMode: &mode,
			Source: &Source{Address: "hub/ConsumerGroups/$Default/Partitions/0",
				Filter: Map{{Key: Symbol("apache.org:selector-filter:string"), Value: Described{Descriptor: uint64(0x0000468C00000004), Value: "amqp.annotation.x-opt-offset > '-1'"}}}},
			Target: &Target{Address: "t"}, InitialDeliveryCount: &one, MaxMessageSize: 1 << 20},
		&Flow{NextIncomingID: &one, IncomingWindow: 10, NextOutgoingID: 1, OutgoingWindow: 10, Handle: &one, DeliveryCount: &one, LinkCredit: &one, Drain: true},
		&Transfer{Handle: 0, DeliveryID: &one, DeliveryTag: []byte{1}, MessageFormat: &one, Settled: true, More: true, State: &Accepted{}},
		&Disposition{Role: RoleReceiver, First: 1, Last: &one, Settled: true, State: &Rejected{Error: &Error{Condition: "amqp:x", Description: "d", Info: Map{{Key: Symbol("k"), Value: int64(1)}}}}},
		&Disposition{State: &Modified{DeliveryFailed: true, MessageAnnotations: Map{{Key: Symbol("x-opt"), Value: time.UnixMilli(1).UTC()}}}},
		&Disposition{State: &Received{SectionNumber: 1, SectionOffset: 2}},
		&Disposition{State: &Released{}},
		&Detach{Handle: 1, Closed: true, Error: &Error{Condition: "amqp:link:detach-forced"}},
		&End{}, &Close{Error: &Error{Condition: "amqp:connection:forced"}},
		&SASLMechanisms{Mechanisms: []Symbol{"MSSBCBS", "PLAIN", "ANONYMOUS"}},
		&SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00u\x00p"), Hostname: "h"},
		&SASLOutcome{Code: SASLAuth, AdditionalData: []byte("x")},
	} {
		b, err := p.AppendAMQP(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x00, 0xa3, 0x0e, 'a', 'm', 'q', 'p', ':', 'o', 'p', 'e', 'n', ':', 'l', 'i', 's', 't', 0x45})
	f.Add([]byte{0x00, 0x53, 0x43, 0xc0, 0x03, 0x01, 0xa0, 0x00})
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseBody(body)
		if err != nil {
			return
		}
		m, ok := p.(Marshaler)
		if !ok {
			return // SASLResponse: the server only reads it
		}
		enc, err := m.AppendAMQP(nil)
		if err != nil {
			t.Fatalf("parsed %#v from % x but cannot encode it: %v", p, body, err)
		}
		if tr, ok := p.(*Transfer); ok {
			enc = append(enc, tr.Payload...)
		}
		again, err := ParseBody(enc)
		if err != nil {
			t.Fatalf("%#v encodes as % x, which does not parse: %v", p, enc, err)
		}
		enc2, err := again.(Marshaler).AppendAMQP(nil)
		if tr, ok := again.(*Transfer); ok {
			enc2 = append(enc2, tr.Payload...)
		}
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("% x parsed as %#v, encoded as % x, then as % x (%v)", body, p, enc, enc2, err)
		}
	})
}

// FuzzParseMessage feeds encoded messages (a transfer's payload) to the
// message parser, with the same promise as FuzzParseBody: what parses
// re-encodes stably.
func FuzzParseMessage(f *testing.F) {
	for _, m := range []*Message{
		{Header: &Header{Durable: true, Priority: 4, TTL: time.Minute, DeliveryCount: 2},
			Annotations: Map{{Key: Symbol("x-opt-partition-key"), Value: "pk"}, {Key: Symbol("x-opt-sequence-number"), Value: int64(7)}},
			Properties: &Properties{MessageID: "mid", UserID: []byte("u"), To: "/devices/d1/messages/devicebound", CorrelationID: uint64(9),
				ContentType: "application/json", ContentEncoding: "utf-8", AbsoluteExpiryTime: time.UnixMilli(1700000000000).UTC(), GroupID: "g"},
			ApplicationProperties: Map{{Key: "k", Value: "v"}, {Key: "n", Value: int32(-1)}, {Key: "f", Value: 1.5}},
			Data:                  [][]byte{[]byte(`{"t":1}`)}},
		{Properties: &Properties{MessageID: UUID{1, 2, 3}}, Value: Map{{Key: "operation", Value: "READ"}}, HasValue: true},
		{Sequence: [][]any{{int64(1), "two", nil}}, Footer: Map{{Key: Symbol("f"), Value: true}}},
		{DeliveryAnnotations: Map{{Key: Symbol("x-opt-lock-token"), Value: UUID{}}}, Data: [][]byte{{1}, {2, 3}}},
	} {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x00, 0xa3, 0x10, 'a', 'm', 'q', 'p', ':', 'd', 'a', 't', 'a', ':', 'b', 'i', 'n', 'a', 'r', 'y', 0xa0, 0x01, 'x'})
	f.Add([]byte{0x00, 0x53, 0x70, 0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		_ = m.Body()
		if m.Properties != nil {
			_ = MessageIDString(m.Properties.MessageID)
			_ = MessageIDString(m.Properties.CorrelationID)
		}
		enc, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed %#v from % x but cannot encode it: %v", m, b, err)
		}
		again, err := ParseMessage(enc)
		if err != nil {
			t.Fatalf("%#v encodes as % x, which does not parse: %v", m, enc, err)
		}
		enc2, err := again.Marshal()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("% x parsed as %#v, encoded as % x, then as % x (%v)", b, m, enc, enc2, err)
		}
	})
}
