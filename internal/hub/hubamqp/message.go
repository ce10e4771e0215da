package hubamqp

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// serial runs a link's work in order on one goroutine, so the engine's
// reader (Receive, OnOutcome) only ever appends to a list.
type serial struct {
	mu     sync.Mutex
	jobs   []func()
	wake   chan struct{}
	closed bool
}

func newSerial() *serial { return &serial{wake: make(chan struct{}, 1)} }

// do hands f over without blocking. After the link ended, f runs on a
// goroutine of its own (a settlement that arrived late still happens).
func (s *serial) do(f func()) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		go f()
		return
	}
	s.jobs = append(s.jobs, f)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run runs what is handed over until ctx ends, then what was already
// handed over, and returns.
func (s *serial) run(ctx context.Context) {
	for {
		s.mu.Lock()
		jobs := s.jobs
		s.jobs = nil
		if len(jobs) == 0 && ctx.Err() != nil {
			s.closed = true
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		for _, f := range jobs {
			f()
		}
		if len(jobs) > 0 {
			continue
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
		}
	}
}

// propertyText renders an application property value as the string IoT
// Hub properties are.
func propertyText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case wire.Symbol:
		return string(x)
	case []byte:
		return string(x)
	case wire.UUID:
		return x.String()
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// payload is a message's body: its data sections, else a string or binary
// amqp-value.
func payload(m *wire.Message) []byte {
	if len(m.Data) > 0 {
		return m.Body()
	}
	switch v := m.Value.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

func idText(v any) string { return wire.MessageIDString(v) }

// c2dFromAMQP reads a service's cloud-to-device message: the device from
// `to`, ids as text, iothub-ack, expiry, the other application properties.
func c2dFromAMQP(m *wire.Message) (deviceID, moduleID string, out c2d.Message, refusal *wire.Error) {
	p := m.Properties
	if p == nil || p.To == "" {
		return "", "", out, wire.Errorf("com.microsoft:argument-error", "The message has no 'to': set it to /devices/{deviceId}/messages/devicebound.")
	}
	r, err := parseAddress(p.To, false)
	if err != nil || r.ep != epDeviceBound {
		return "", "", out, wire.Errorf("com.microsoft:argument-error", "The message's 'to' is '%s'; it must be /devices/{deviceId}/messages/devicebound.", p.To)
	}
	out = c2d.Message{MessageID: idText(p.MessageID), CorrelationID: idText(p.CorrelationID), UserID: string(p.UserID),
		ContentType: string(p.ContentType), ContentEncoding: string(p.ContentEncoding), Expiry: p.AbsoluteExpiryTime,
		App: map[string]string{}, Payload: payload(m)}
	if out.Expiry.IsZero() && m.Header != nil && m.Header.TTL > 0 {
		out.Expiry = time.Now().Add(m.Header.TTL)
	}
	for _, kv := range m.ApplicationProperties {
		k := propertyText(kv.Key)
		if strings.EqualFold(k, "iothub-ack") {
			out.Ack = strings.ToLower(propertyText(kv.Value))
			continue
		}
		out.App[k] = propertyText(kv.Value)
	}
	switch out.Ack {
	case "", "none", "positive", "negative", "full":
	default:
		return "", "", out, wire.Errorf("com.microsoft:argument-error", "iothub-ack is '%s'; it must be none, positive, negative or full.", out.Ack)
	}
	return r.deviceID, r.moduleID, out, nil
}

// deviceBoundPath is the `to` of a device's (or module's) messages.
func deviceBoundPath(deviceID, moduleID string) string {
	p := "/devices/" + url.PathEscape(deviceID)
	if moduleID != "" {
		p += "/modules/" + url.PathEscape(moduleID)
	}
	return p + "/messages/devicebound"
}

// c2dToAMQP is the message a device receives: ids, `to`, content type and
// encoding, expiry, the application properties with iothub-ack, and the
// number of earlier deliveries as the header's delivery-count.
func c2dToAMQP(m *c2d.Message, deviceID, moduleID string) *wire.Message {
	p := &wire.Properties{To: deviceBoundPath(deviceID, moduleID), ContentType: wire.Symbol(m.ContentType),
		ContentEncoding: wire.Symbol(m.ContentEncoding), AbsoluteExpiryTime: m.Expiry, CreationTime: m.Enqueued}
	if m.MessageID != "" {
		p.MessageID = m.MessageID
	}
	if m.CorrelationID != "" {
		p.CorrelationID = m.CorrelationID
	}
	if m.UserID != "" {
		p.UserID = []byte(m.UserID)
	}
	keys := make([]string, 0, len(m.App))
	for k := range m.App {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	app := make(wire.Map, 0, len(keys)+1)
	for _, k := range keys {
		app = append(app, wire.KV{Key: k, Value: m.App[k]})
	}
	if m.Ack != "" {
		app = append(app, wire.KV{Key: "iothub-ack", Value: m.Ack})
	}
	out := &wire.Message{Header: &wire.Header{Durable: true, Priority: 4, DeliveryCount: uint32(max(m.DeliveryCount-1, 0))},
		Properties: p, Data: [][]byte{m.Payload}}
	if !m.Enqueued.IsZero() {
		out.Annotations = wire.Map{{Key: wire.Symbol("iothub-enqueuedtime"), Value: m.Enqueued}}
	}
	if len(app) > 0 {
		out.ApplicationProperties = app
	}
	return out
}

// annotationSystemProps maps the device SDK's message annotations to
// system properties (what MQTT's $.ifid and $.sub carry).
var annotationSystemProps = map[string]string{
	"iothub-interface-id": telemetry.PropInterfaceID,
	"dt-dataschema":       telemetry.PropInterfaceID,
	"dt-subject":          telemetry.PropComponent,
}

// telemetryFromAMQP maps a device's message onto IoT Hub's system and
// application properties, as devicemqtt does for MQTT's property bag.
func telemetryFromAMQP(m *wire.Message) telemetry.Message {
	out := telemetry.Message{Payload: payload(m), System: map[string]string{}, App: map[string]string{}}
	set := func(k, v string) {
		if v != "" {
			out.System[k] = v
		}
	}
	if p := m.Properties; p != nil {
		set(telemetry.PropMessageID, idText(p.MessageID))
		set(telemetry.PropCorrelationID, idText(p.CorrelationID))
		set(telemetry.PropUserID, string(p.UserID))
		set(telemetry.PropContentType, string(p.ContentType))
		set(telemetry.PropContentEncoding, string(p.ContentEncoding))
	}
	for _, kv := range m.Annotations {
		if sys, ok := annotationSystemProps[propertyText(kv.Key)]; ok {
			set(sys, propertyText(kv.Value))
		}
	}
	for _, kv := range m.ApplicationProperties {
		k := propertyText(kv.Key)
		if strings.EqualFold(k, "iothub-outputname") {
			continue // as MQTT's $.on: not stamped on telemetry
		}
		out.App[k] = propertyText(kv.Value)
	}
	return out
}
