package hubamqp

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
)

// Application properties of direct method messages.
const (
	propMethodName   = "IoThub-methodname"
	propMethodStatus = "IoThub-status"
)

// SendMethod implements devicemqtt.MethodTransport: when the device has a
// receiver link on its methods address, the request goes there (with a
// fresh uuid as correlation-id) and the response arriving on its sender
// link is passed to respond.
func (h *Handler) SendMethod(ctx context.Context, hub, deviceID, moduleID, name string, payload json.RawMessage,
	respond func(status int, payload []byte)) (func(), bool, error) {
	k := identityKey{strings.ToLower(hub), deviceID, moduleID}
	ch := h.channels.find(h.channels.methods, k, nil)
	if ch == nil {
		return nil, false, nil
	}
	corr := newMessageID()
	id := corr.String()
	h.channels.mu.Lock()
	h.channels.pending[id] = pendingCall{key: k, respond: respond}
	h.channels.mu.Unlock()
	cancel := func() {
		h.channels.mu.Lock()
		delete(h.channels.pending, id)
		h.channels.mu.Unlock()
	}
	msg := &wire.Message{Properties: &wire.Properties{CorrelationID: corr},
		ApplicationProperties: wire.Map{{Key: propMethodName, Value: name}}, Data: [][]byte{payload}}
	select {
	case ch.out <- msg:
		return cancel, true, nil
	case <-ctx.Done():
		cancel()
		return nil, true, ctx.Err()
	}
}

// methodResponseLink is a device's sender on /devices/{id}/methods/devicebound:
// responses to the requests its receiver link got, matched by
// correlation-id, status in IoThub-status.
func (h *Handler) methodResponseLink(id deviceauth.Identity, claim string) *amqp.Inbound {
	k := keyOf(id)
	return &amqp.Inbound{Claim: claim, Credit: 100, Receive: func(d *amqp.Delivery) {
		// Cheap and non-blocking: it runs on the connection's reader.
		defer d.Accept()
		m, err := d.Message()
		if err != nil || m.Properties == nil {
			return
		}
		corr := idText(m.Properties.CorrelationID)
		h.channels.mu.Lock()
		call, ok := h.channels.pending[corr]
		if ok && call.key == k {
			delete(h.channels.pending, corr)
		}
		h.channels.mu.Unlock()
		if !ok || call.key != k {
			h.cfg.Log.Info("method response for no pending call", "device", id.DeviceID, "correlationId", corr)
			return
		}
		status := 200
		if v, found := m.ApplicationProperties.Get(propMethodStatus); found {
			if n, isInt := wire.AsInt64(v); isInt {
				status = int(n)
			}
		}
		call.respond(status, payload(m))
	}}
}
