package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

// Routed says whether an enabled route of hub reads source: events no
// route reads are not stored — a bulk import's million lifecycle events
// would otherwise sit in the routers' way.
type Routed func(ctx context.Context, hub, source string) bool

// Emitter publishes non-telemetry events.
type Emitter struct {
	streams *telemetry.Streams
	routed  Routed
	log     *slog.Logger
	now     func() time.Time
	seq     atomic.Uint64
}

// New builds an emitter. A nil routed stores every event.
func New(streams *telemetry.Streams, routed Routed, log *slog.Logger, now func() time.Time) *Emitter {
	if routed == nil {
		routed = func(context.Context, string, string) bool { return true }
	}
	return &Emitter{streams: streams, routed: routed, log: log, now: now}
}

func (e *Emitter) publish(ctx context.Context, source, schema, opType, hub, deviceID, moduleID string, body any) {
	if !e.routed(ctx, hub, source) {
		return
	}
	b, _ := json.Marshal(body)
	app := map[string]string{
		"hubName": hub, "deviceId": deviceID, "iothub-message-schema": schema, "opType": opType,
		"operationTimestamp": e.now().UTC().Format("2006-01-02T15:04:05.0000000Z"),
	}
	if moduleID != "" {
		app["moduleId"] = moduleID
	}
	m := telemetry.Message{Hub: hub, DeviceID: deviceID, ModuleID: moduleID, Payload: b, App: app,
		System: map[string]string{
			telemetry.PropContentType: "application/json", telemetry.PropContentEncoding: "utf-8",
			telemetry.PropUserID: hub, telemetry.PropCorrelationID: fmt.Sprintf("%x", e.now().UnixNano()),
		}}
	if err := e.streams.PublishSource(context.WithoutCancel(ctx), source, m); err != nil {
		e.log.Warn("publish routing event", "source", source, "device", deviceID, "err", err)
	}
}

// TwinChanged is a registry.OnTwinChange hook.
func (e *Emitter) TwinChanged(ctx context.Context, c registry.TwinChange) {
	props := map[string]any{}
	if c.Desired != nil {
		props["desired"] = c.Desired
	}
	if c.Reported != nil {
		props["reported"] = c.Reported
	}
	body := map[string]any{"version": c.Version, "properties": props}
	if c.Tags != nil {
		body["tags"] = c.Tags
	}
	op := "updateTwin"
	if c.Replace {
		op = "replaceTwin"
	}
	e.publish(ctx, telemetry.SourceTwinChange, "twinChangeNotification", op, c.Hub, c.DeviceID, c.ModuleID, body)
}

// Lifecycle is a registry.OnLifecycle hook.
func (e *Emitter) Lifecycle(ctx context.Context, l registry.Lifecycle) {
	op := "deleteDeviceIdentity"
	if l.Created {
		op = "createDeviceIdentity"
	}
	e.publish(ctx, telemetry.SourceLifecycle, "deviceLifecycleNotification", op, l.Hub, l.DeviceID, l.ModuleID, l.Twin)
}

// Connection records a device connecting or disconnecting. The sequence
// number is a 64-hex-digit string that only grows (compare as strings).
func (e *Emitter) Connection(ctx context.Context, hub, deviceID, moduleID string, connected bool) {
	op := "deviceDisconnected"
	if connected {
		op = "deviceConnected"
	}
	seq := fmt.Sprintf("%032x%032x", uint64(e.now().UnixNano()), e.seq.Add(1))
	e.publish(ctx, telemetry.SourceConnectionState, "deviceConnectionStateNotification", op, hub, deviceID, moduleID,
		map[string]string{"sequenceNumber": seq})
}
