package telemetry

import (
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// This file exports the stream's naming and encoding for the routing
// engine, which consumes a hub's stream with its own durable consumer and
// re-encodes routed messages the same way on its per-endpoint queues.

// SourceTelemetry is the iothub-message-source of device messages.
const SourceTelemetry = "Telemetry"

// StreamName is the logical name of a hub's stream (give it to
// bus.Stream for the physical one).
func StreamName(hub string) string { return streamName(hub) }

// EventsSubject is the logical subject filter of a hub's device messages,
// every partition (give its parts to bus.Subject for the physical one).
func EventsSubject(hub string) string { return "hub." + strings.ToLower(hub) + ".events.*" }

// Headers encodes m's system and application properties as stored on the
// stream; source is the iothub-message-source unless m.System has one.
// m.Enqueued must be set.
func Headers(m Message, source string) nats.Header { return headers(m, source) }

// Decode turns a stored message back into a Message: properties, device,
// enqueued time, stream sequence, and the partition from the subject's last
// token (0 when that token is not a number, as for non-telemetry sources).
func Decode(hub string, msg jetstream.Msg) Message { return decode(hub, msg) }

// AppHeader is the header name that carries the application property name.
func AppHeader(name string) string { return appPrefix + url.QueryEscape(name) }
