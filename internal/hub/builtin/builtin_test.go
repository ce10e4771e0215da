package builtin

import (
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

// TestToEvent: system properties land where IoT Hub puts them on the
// built-in endpoint — ids and content type as AMQP properties, the rest as
// message annotations — and sequence numbers are the stream's minus one.
func TestToEvent(t *testing.T) {
	enq := time.UnixMilli(1700000000123).UTC()
	ev := toEvent(telemetry.Message{
		DeviceID: "d1", Sequence: 42, Enqueued: enq, Payload: []byte(`{"t":1}`),
		System: map[string]string{
			telemetry.PropMessageID: "m1", telemetry.PropCorrelationID: "c1", telemetry.PropContentType: "application/json",
			telemetry.PropContentEncoding: "utf-8", telemetry.PropDeviceID: "d1", telemetry.PropEnqueuedTime: enq.Format(time.RFC3339Nano),
			telemetry.PropAuthMethod: `{"scope":"device","type":"sas","issuer":"iothub"}`,
		},
		App: map[string]string{"level": "hot"},
	})
	if ev.SequenceNumber != 41 || !ev.EnqueuedTime.Equal(enq) || string(ev.Body) != `{"t":1}` {
		t.Fatalf("event %+v", ev)
	}
	p := ev.Properties
	if p == nil || p.MessageID != "m1" || p.CorrelationID != "c1" || p.ContentType != "application/json" || p.ContentEncoding != "utf-8" {
		t.Fatalf("properties %+v", p)
	}
	if v, _ := ev.Annotations.Get(telemetry.PropDeviceID); v != "d1" {
		t.Errorf("device id annotation %#v", v)
	}
	if v, _ := ev.Annotations.Get(telemetry.PropEnqueuedTime); v != enq {
		t.Errorf("iothub-enqueuedtime %#v, want a timestamp", v)
	}
	if _, ok := ev.Annotations.Get(telemetry.PropMessageID); ok {
		t.Error("message-id is an annotation too")
	}
	if v, _ := ev.ApplicationProperties.Get("level"); v != "hot" {
		t.Errorf("application properties %v", ev.ApplicationProperties)
	}
}

func TestHubFromBuiltInHost(t *testing.T) {
	for host, want := range map[string]string{
		"iothub-ns-myhub.servicebus.outpost.localhost": "myhub",
		"IOTHUB-NS-MyHub.servicebus.outpost.localhost": "myhub",
		"myns.servicebus.outpost.localhost":            "",
		"iothub-ns-a.b.servicebus.outpost.localhost":   "",
		"iothub-ns-myhub.servicebus.other.example":     "",
	} {
		if got := telemetry.HubFromBuiltInHost(host, "outpost.localhost"); got != want {
			t.Errorf("%s: %q, want %q", host, got, want)
		}
	}
}
