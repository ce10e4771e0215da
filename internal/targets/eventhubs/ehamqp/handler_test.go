package ehamqp

import (
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

func TestParseAddress(t *testing.T) {
	for _, c := range []struct {
		in   string
		want address
		bad  bool
	}{
		{in: "telemetry", want: address{eventHub: "telemetry", partition: -1, path: "telemetry"}},
		{in: "/telemetry/Partitions/3", want: address{eventHub: "telemetry", partition: 3, path: "telemetry/Partitions/3"}},
		{in: "telemetry/ConsumerGroups/$Default/Partitions/0",
			want: address{eventHub: "telemetry", consumerGroup: "$Default", partition: 0, path: "telemetry/ConsumerGroups/$Default/Partitions/0"}},
		{in: "amqps://ns.servicebus.example/telemetry/partitions/1", want: address{eventHub: "telemetry", partition: 1, path: "telemetry/partitions/1"}},
		{in: "$management", want: address{partition: -1, management: true, path: "$management"}},
		{in: "telemetry/Partitions/x", bad: true},
		{in: "telemetry/ConsumerGroups/$Default", bad: true},
		{in: "", bad: true},
	} {
		got, err := parseAddress(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("%q: parsed as %+v", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	src := func(expr string) *wire.Source {
		return &wire.Source{Filter: wire.Map{{Key: wire.Symbol(selectorFilter), Value: wire.Described{Descriptor: selectorDescriptor, Value: expr}}}}
	}
	for _, c := range []struct {
		src  *wire.Source
		want Position
		bad  bool
	}{
		{src: nil, want: Position{Kind: FromLatest}},
		{src: src("amqp.annotation.x-opt-offset > '-1'"), want: Position{Kind: FromEarliest}},
		{src: src("amqp.annotation.x-opt-offset > '@latest'"), want: Position{Kind: FromLatest}},
		{src: src("amqp.annotation.x-opt-offset > '41'"), want: Position{Kind: FromSequence, Sequence: 41}},
		{src: src("amqp.annotation.x-opt-offset >= '41'"), want: Position{Kind: FromSequence, Sequence: 41, Inclusive: true}},
		{src: src("amqp.annotation.x-opt-sequence-number > '7'"), want: Position{Kind: FromSequence, Sequence: 7}},
		{src: src("amqp.annotation.x-opt-enqueued-time > '1700000000000'"), want: Position{Kind: FromTime, Time: time.UnixMilli(1700000000001)}},
		// rhea files it under another key; the descriptor decides.
		{src: &wire.Source{Filter: wire.Map{{Key: wire.Symbol("jms-selector"), Value: wire.Described{Descriptor: selectorDescriptor, Value: "amqp.annotation.x-opt-offset > '-1'"}}}},
			want: Position{Kind: FromEarliest}},
		{src: src("amqp.annotation.x-opt-offset > 'soon'"), bad: true},
		{src: src("DROP TABLE"), bad: true},
	} {
		got, err := parseFilter(c.src)
		if c.bad {
			if err == nil {
				t.Errorf("%+v: parsed as %+v", c.src, got)
			}
			continue
		}
		if err != nil || got.Kind != c.want.Kind || got.Sequence != c.want.Sequence || got.Inclusive != c.want.Inclusive || !got.Time.Equal(c.want.Time) {
			t.Errorf("%+v: got %+v, %v; want %+v", c.src, got, err, c.want)
		}
	}
}

func TestAppendEventTypes(t *testing.T) {
	b, err := appendEvent(nil, Event{Body: []byte("x"), SequenceNumber: 5, EnqueuedTime: time.UnixMilli(1700000000000), PartitionKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	// The types azeventhubs v1 asserts (it panics on any other width).
	if v, _ := m.Annotations.Get(annSequenceNumber); v != int64(5) {
		t.Errorf("sequence number %#v", v)
	}
	if v, _ := m.Annotations.Get(annOffset); v != "5" {
		t.Errorf("offset %#v", v)
	}
	if v, _ := m.Annotations.Get(annEnqueuedTime); !v.(time.Time).Equal(time.UnixMilli(1700000000000)) {
		t.Errorf("enqueued time %#v", v)
	}
	if v, _ := m.Annotations.Get(annPartitionKey); v != "k" {
		t.Errorf("partition key %#v", v)
	}
}
