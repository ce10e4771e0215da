package telemetry

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/bus"
)

// System property names, as IoT Hub stamps them on routed and built-in
// endpoint messages.
const (
	PropDeviceID        = "iothub-connection-device-id"
	PropModuleID        = "iothub-connection-module-id"
	PropAuthMethod      = "iothub-connection-auth-method"
	PropGenerationID    = "iothub-connection-auth-generation-id"
	PropEnqueuedTime    = "iothub-enqueuedtime"
	PropMessageSource   = "iothub-message-source"
	PropMessageID       = "message-id"
	PropCorrelationID   = "correlation-id"
	PropUserID          = "user-id"
	PropContentType     = "content-type"
	PropContentEncoding = "content-encoding"
	PropInterfaceID     = "dt-dataschema"
	PropComponent       = "dt-subject"
)

// appPrefix marks application properties among the NATS headers; the rest
// of the header name is the property name, query-escaped (headers allow a
// narrower alphabet than property names).
const appPrefix = "app-"

// Message is one device-to-cloud message.
type Message struct {
	Hub, DeviceID, ModuleID string
	// System are IoT Hub system properties (PropMessageID, PropContentType, …).
	System map[string]string
	// App are the application properties.
	App     map[string]string
	Payload []byte
	// Enqueued is set by Publish (and by Read from the stream).
	Enqueued  time.Time
	Partition int
	Sequence  uint64
}

// Streams manages the hubs' telemetry streams.
type Streams struct {
	bus *bus.Bus
	now func() time.Time
}

// New builds the telemetry streams over the bus.
func New(b *bus.Bus, now func() time.Time) *Streams { return &Streams{bus: b, now: now} }

func streamName(hub string) string { return "hub-" + strings.ToLower(hub) }

// physicalSubject is a built-in endpoint partition's subject as
// JetStream's own API needs it (Bus.Publish and EnsureStream take the
// logical one and add the bus's prefix).
func (s *Streams) physicalSubject(hub string, partition int) string {
	return s.bus.Subject("hub", strings.ToLower(hub), "events", strconv.Itoa(partition))
}

// EnsureHub creates or updates a hub's stream: retention in days, file
// storage. Idempotent.
func (s *Streams) EnsureHub(ctx context.Context, hub string, retentionDays int) error {
	if retentionDays <= 0 {
		retentionDays = 1
	}
	_, err := s.bus.EnsureStream(ctx, jetstream.StreamConfig{
		Name: streamName(hub),
		// events.{partition}: the built-in endpoint; route.{partition}:
		// device messages waiting for the router (see Path);
		// route.{source}: twin change, lifecycle and connection events,
		// which only routing delivers.
		Subjects: []string{EventsSubject(hub), RouterSubject(hub)},
		Storage:  jetstream.FileStorage,
		MaxAge:   time.Duration(retentionDays) * 24 * time.Hour,
		// Duplicate detection by message id for retried publishes.
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("telemetry: ensure stream for %s: %w", hub, err)
	}
	return nil
}

// RemoveHub deletes a hub's stream.
func (s *Streams) RemoveHub(ctx context.Context, hub string) error {
	err := s.bus.JetStream().DeleteStream(ctx, s.bus.Stream(streamName(hub)))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("telemetry: delete stream for %s: %w", hub, err)
	}
	return nil
}

// Partition is the partition a device's messages go to.
func Partition(deviceID string, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(deviceID))
	return int(h.Sum32() % uint32(partitions))
}

// Publish stores a device message durably on path and returns it with its
// enqueued time, partition and sequence.
func (s *Streams) Publish(ctx context.Context, partitions int, path Path, m Message) (Message, error) {
	m.Enqueued = s.now().UTC()
	m.Partition = Partition(m.DeviceID, partitions)
	hdr := headers(m, SourceTelemetry)
	seq, err := s.bus.Publish(ctx, path.subject(m.Hub, m.Partition), m.Payload, hdr)
	if err != nil {
		return Message{}, fmt.Errorf("telemetry: publish for %s/%s: %w", m.Hub, m.DeviceID, err)
	}
	m.Sequence = seq
	return m, nil
}

// PublishAsync starts storing a device-to-cloud message on path and
// returns a wait for the outcome; see bus.PublishAsync.
func (s *Streams) PublishAsync(partitions int, path Path, m Message) (func(ctx context.Context) error, error) {
	m.Enqueued = s.now().UTC()
	m.Partition = Partition(m.DeviceID, partitions)
	wait, err := s.bus.PublishAsync(path.subject(m.Hub, m.Partition), m.Payload, headers(m, SourceTelemetry))
	if err != nil {
		return nil, fmt.Errorf("telemetry: publish for %s/%s: %w", m.Hub, m.DeviceID, err)
	}
	return func(ctx context.Context) error {
		if _, err := wait(ctx); err != nil {
			return fmt.Errorf("telemetry: publish for %s/%s: %w", m.Hub, m.DeviceID, err)
		}
		return nil
	}, nil
}

// headers stamps a message's system and application properties. source is
// the iothub-message-source, unless the message already carries one.
func headers(m Message, source string) nats.Header {
	hdr := nats.Header{}
	for k, v := range m.System {
		hdr.Set(k, v)
	}
	hdr.Set(PropDeviceID, m.DeviceID)
	if m.ModuleID != "" {
		hdr.Set(PropModuleID, m.ModuleID)
	}
	hdr.Set(PropEnqueuedTime, m.Enqueued.Format(time.RFC3339Nano))
	if hdr.Get(PropMessageSource) == "" {
		hdr.Set(PropMessageSource, source)
	}
	for k, v := range m.App {
		hdr.Set(appPrefix+url.QueryEscape(k), v)
	}
	return hdr
}

// decode turns a stored message back into a Message.
func decode(hub string, msg jetstream.Msg) Message {
	m := Message{Hub: hub, System: map[string]string{}, App: map[string]string{}, Payload: msg.Data()}
	for k, vs := range msg.Headers() {
		if len(vs) == 0 {
			continue
		}
		if name, ok := strings.CutPrefix(k, appPrefix); ok {
			if un, err := url.QueryUnescape(name); err == nil {
				name = un
			}
			m.App[name] = vs[0]
			continue
		}
		m.System[k] = vs[0]
	}
	m.DeviceID, m.ModuleID = m.System[PropDeviceID], m.System[PropModuleID]
	if t, err := time.Parse(time.RFC3339Nano, m.System[PropEnqueuedTime]); err == nil {
		m.Enqueued = t
	}
	if md, err := msg.Metadata(); err == nil {
		m.Sequence = md.Sequence.Stream
	}
	if i := strings.LastIndexByte(msg.Subject(), '.'); i >= 0 {
		m.Partition, _ = strconv.Atoi(msg.Subject()[i+1:])
	}
	return m
}

// ReadOptions select where reading starts.
type ReadOptions struct {
	// FromStart reads everything retained; otherwise only new messages.
	FromStart bool
	// Partition limits reading to one partition; -1 reads all.
	Partition int
}

// Read streams the messages of a hub's built-in endpoint to fn until ctx
// ends or fn returns an error.
// It uses an ordered consumer: nothing is acknowledged or consumed, like an
// Event Hubs reader (the built-in endpoint keeps messages for its retention).
func (s *Streams) Read(ctx context.Context, hub string, opts ReadOptions, fn func(Message) error) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	if opts.FromStart {
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cfg.FilterSubjects = []string{s.bus.Subject("hub", strings.ToLower(hub), "events", "*")}
	if opts.Partition >= 0 {
		cfg.FilterSubjects = []string{s.physicalSubject(hub, opts.Partition)}
	}
	return s.readLoop(ctx, hub, cfg, fn)
}

// readLoop runs an ordered consumer over a hub's stream, handing each
// message to fn until ctx ends or fn returns an error.
func (s *Streams) readLoop(ctx context.Context, hub string, cfg jetstream.OrderedConsumerConfig, fn func(Message) error) error {
	c, err := s.bus.JetStream().OrderedConsumer(ctx, s.bus.Stream(streamName(hub)), cfg)
	if err != nil {
		return fmt.Errorf("telemetry: read %s: %w", hub, err)
	}
	err = bus.ReadOrdered(ctx, c, func(msg jetstream.Msg) error { return fn(decode(hub, msg)) })
	if err != nil {
		return fmt.Errorf("telemetry: read %s: %w", hub, err)
	}
	return nil
}

// Routing sources of non-telemetry events (iothub-message-source).
const (
	SourceTwinChange      = "twinChangeEvents"
	SourceLifecycle       = "deviceLifecycleEvents"
	SourceConnectionState = "deviceConnectionStateEvents"
)

// PublishSource stores a non-telemetry event (twin change, lifecycle,
// connection state) for routing, stamped like telemetry.
func (s *Streams) PublishSource(ctx context.Context, source string, m Message) error {
	m.Enqueued = s.now().UTC()
	hdr := headers(m, source)
	if _, err := s.bus.Publish(ctx, SourceSubject(m.Hub, source), m.Payload, hdr); err != nil {
		return fmt.Errorf("telemetry: publish %s event for %s/%s: %w", source, m.Hub, m.DeviceID, err)
	}
	return nil
}

// ReadSources streams a hub's non-telemetry events (for tests).
func (s *Streams) ReadSources(ctx context.Context, hub string, fn func(source string, m Message) error) error {
	return s.readLoop(ctx, hub, jetstream.OrderedConsumerConfig{
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubjects: []string{s.bus.Subject("hub", strings.ToLower(hub), "route", "*")},
	}, func(m Message) error {
		if m.System[PropMessageSource] == SourceTelemetry {
			return nil // a device message stored for the router
		}
		return fn(m.System[PropMessageSource], m)
	})
}
