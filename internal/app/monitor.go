package app

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

// monitorEvents streams a hub's telemetry (the built-in events endpoint) as
// JSON lines, in the shape `az iot hub monitor-events` prints. Reading a
// hub's telemetry is as powerful as holding its keys, so it needs the
// listkeys action on the hub.
func (a *App) monitorEvents(w http.ResponseWriter, r *http.Request, p arm.Principal, authz rbacAuthorizer, name string) error {
	ctx := r.Context()
	h, ok, err := a.hub.hubs.Get(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return arm.Errorf(http.StatusNotFound, "ResourceNotFound", "No IoT hub named '%s'.", name)
	}
	if err := authz.decide(p, "Microsoft.Devices/IotHubs/listkeys/action", h.ResourceID); err != nil {
		return err
	}
	q := r.URL.Query()
	fromStart, _ := strconv.ParseBool(q.Get("fromStart"))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	return a.hub.telemetry.Read(ctx, h.Name, telemetry.ReadOptions{FromStart: fromStart, Partition: -1}, func(m telemetry.Message) error {
		var payload any = string(m.Payload)
		if json.Valid(m.Payload) {
			payload = json.RawMessage(m.Payload)
		}
		if err := enc.Encode(map[string]any{"event": map[string]any{
			"origin": m.DeviceID, "module": m.ModuleID, "partition": m.Partition,
			"enqueuedTime": m.Enqueued.Format(time.RFC3339Nano), "payload": payload,
			"properties": map[string]any{"system": m.System, "application": m.App},
		}}); err != nil {
			return err
		}
		return rc.Flush()
	})
}
