package app

import (
	"errors"
	"net/http"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/devicemqtt"
	"github.com/outpost-iot/outpost/internal/hub/mqtt"
)

// sendC2D queues a cloud-to-device message (what the service SDKs do over
// AMQP; this is Outpost's REST form, used by `outpost iot device
// c2d-message send`). It needs the listkeys action on the hub, as holding
// the service key would.
func (a *App) sendC2D(w http.ResponseWriter, r *http.Request, p arm.Principal, authz rbacAuthorizer, hubName, deviceID string) error {
	ctx := r.Context()
	h, ok, err := a.hub.hubs.Get(ctx, hubName)
	if err != nil {
		return err
	}
	if !ok {
		return arm.Errorf(http.StatusNotFound, "ResourceNotFound", "No IoT hub named '%s'.", hubName)
	}
	if err := authz.decide(p, "Microsoft.Devices/IotHubs/listkeys/action", h.ResourceID); err != nil {
		return err
	}
	var in struct {
		Data            string            `json:"data"`
		Properties      map[string]string `json:"properties"`
		MessageID       string            `json:"messageId"`
		CorrelationID   string            `json:"correlationId"`
		ContentType     string            `json:"contentType"`
		ContentEncoding string            `json:"contentEncoding"`
		Ack             string            `json:"ack"`
		TTLSeconds      int               `json:"ttlSeconds"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if _, found, err := a.hub.registry.Lookup(ctx, h.Name, deviceID, ""); err != nil {
		return err
	} else if !found {
		return arm.Errorf(http.StatusNotFound, "DeviceNotFound", "Device '%s' is not registered in hub %s.", deviceID, h.Name)
	}
	m := c2d.Message{Payload: []byte(in.Data), App: in.Properties, MessageID: in.MessageID, CorrelationID: in.CorrelationID,
		ContentType: in.ContentType, ContentEncoding: in.ContentEncoding, Ack: in.Ack}
	if in.TTLSeconds > 0 {
		m.Expiry = time.Now().Add(time.Duration(in.TTLSeconds) * time.Second)
	}
	err = a.hub.c2d.Send(ctx, h.Name, deviceID, "", m, devicemqtt.C2DSettings(h))
	if errors.Is(err, c2d.ErrQueueFull) {
		return arm.Errorf(http.StatusForbidden, "DeviceMaximumQueueDepthExceeded",
			"Device '%s' already has %d cloud-to-device messages queued; the device must receive some first.", deviceID, c2d.MaxQueuedPerDevice)
	}
	if err != nil {
		return err
	}
	a.hub.sessions.NotifyC2D(mqtt.DeviceKey{Hub: h.Name, DeviceID: deviceID})
	w.WriteHeader(http.StatusNoContent)
	return nil
}
