package hubamqp

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/throttle"
)

// identityKey names a device (or module) of a hub.
type identityKey struct{ hub, deviceID, moduleID string }

func keyOf(id deviceauth.Identity) identityKey {
	return identityKey{id.Hub.Name, id.DeviceID, id.ModuleID}
}

// channel is a device's receiver link on its twin address (responses and
// desired property updates) or its methods address (method requests):
// what is queued on out is sent, pre-settled, as credit allows.
type channel struct {
	conn *amqp.Conn
	out  chan *wire.Message
	// desired: the device subscribed to desired property updates (twin).
	desired atomic.Bool
}

// channels are the twin and method links of the devices connected to this
// node, and the method calls waiting for a response.
//
// Lock order: mu is a leaf; it is never held while sending.
type channels struct {
	mu      sync.Mutex
	twins   map[identityKey][]*channel
	methods map[identityKey][]*channel
	// pending method calls by correlation id.
	pending map[string]pendingCall
}

type pendingCall struct {
	key     identityKey
	respond func(status int, payload []byte)
}

func (cs *channels) add(m map[identityKey][]*channel, k identityKey, ch *channel) {
	cs.mu.Lock()
	m[k] = append(m[k], ch)
	cs.mu.Unlock()
}

func (cs *channels) remove(m map[identityKey][]*channel, k identityKey, ch *channel) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	list := m[k]
	for i, x := range list {
		if x == ch {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(m, k)
		return
	}
	m[k] = list
}

// find returns the identity's newest channel on conn (any connection when
// conn is nil).
func (cs *channels) find(m map[identityKey][]*channel, k identityKey, conn *amqp.Conn) *channel {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	list := m[k]
	for i := len(list) - 1; i >= 0; i-- {
		if conn == nil || list[i].conn == conn {
			return list[i]
		}
	}
	return nil
}

func (cs *channels) all(m map[identityKey][]*channel, k identityKey) []*channel {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]*channel(nil), m[k]...)
}

// channelLink is the Outbound of a twin or methods receiver link: it
// registers the channel for the link's life and sends what is queued.
func (h *Handler) channelLink(c *amqp.Conn, m map[identityKey][]*channel, id deviceauth.Identity, claim string) *amqp.Outbound {
	settled := wire.SenderSettleSettled
	// Registered before the attach is answered: a device that has seen its
	// method link attached is online for methods at once (the engine always
	// runs Run, which unregisters it).
	ch := &channel{conn: c, out: make(chan *wire.Message, 64)}
	k := keyOf(id)
	h.channels.add(m, k, ch)
	return &amqp.Outbound{Claim: claim, SndSettleMode: &settled, Run: func(ctx context.Context, s *amqp.Sender) error {
		defer h.channels.remove(m, k, ch)
		for {
			changed := s.Changed()
			_, drain, err := s.Wait(ctx)
			if err != nil {
				return nil
			}
			var msg *wire.Message
			select {
			case msg = <-ch.out:
			default:
				if drain {
					s.Drained()
					continue
				}
				select {
				case msg = <-ch.out:
				case <-changed:
					continue
				case <-ctx.Done():
					return nil
				}
			}
			raw, err := msg.Marshal()
			if err != nil {
				h.cfg.Log.Error("twin or method message", "device", id.DeviceID, "err", err)
				continue
			}
			if err := s.Send(ctx, raw, amqp.SendOptions{Settled: true}); err != nil {
				return nil
			}
		}
	}}
}

// twinRequestLink is a device's sender on /devices/{id}/twin: GET,
// PATCH /properties/reported, PUT and DELETE
// /notifications/twin/properties/desired, answered on its receiver link
// with the request's correlation-id and a status annotation.
func (h *Handler) twinRequestLink(ctx context.Context, c *amqp.Conn, id deviceauth.Identity, claim string) *amqp.Inbound {
	work := newSerial()
	go work.run(ctx)
	return &amqp.Inbound{Claim: claim, Credit: 100, Receive: func(d *amqp.Delivery) {
		work.do(func() { h.twinRequest(ctx, c, id, d) })
	}}
}

// throttled applies the hub's twin read (GET) or update (PATCH) rate.
func (h *Handler) throttled(op string, id deviceauth.Identity) error {
	if h.cfg.Throttle == nil {
		return nil
	}
	kind := throttle.TwinRead
	if op == "PATCH" {
		kind = throttle.TwinUpdate
	}
	return h.cfg.Throttle.Allow(kind, id.Hub.Name, id.DeviceID)
}

func (h *Handler) twinRequest(ctx context.Context, c *amqp.Conn, id deviceauth.Identity, d *amqp.Delivery) {
	defer d.Accept()
	if ctx.Err() != nil {
		return
	}
	m, err := d.Message()
	if err != nil || m.Properties == nil || m.Properties.CorrelationID == nil {
		h.cfg.Log.Info("twin request without a correlation-id ignored", "device", id.DeviceID, "err", err)
		return
	}
	op := strings.ToUpper(m.Annotations.String("operation"))
	resource := m.Annotations.String("resource")
	status, body, version := http.StatusOK, []byte(nil), int64(0)
	fail := func(err error) {
		e := registry.AsError(err)
		status = e.Status
		body, _ = json.Marshal(map[string]any{"errorCode": e.Status * 1000, "message": e.Message})
	}
	const desiredNotifications = "/notifications/twin/properties/desired"
	var throttleErr error
	if op == "GET" || (op == "PATCH" && resource == "/properties/reported") {
		throttleErr = h.throttled(op, id)
	}
	switch {
	case throttleErr != nil:
		// IoT Hub's 429001 ThrottlingException; the SDKs retry it.
		status = http.StatusTooManyRequests
		body, _ = json.Marshal(map[string]any{"errorCode": 429001, "message": throttleErr.Error()})
	case op == "GET":
		doc, err := h.cfg.Registry.DeviceTwin(ctx, id.Hub.Name, id.DeviceID, id.ModuleID)
		if err != nil {
			fail(err)
			break
		}
		body, _ = json.Marshal(doc)
	case op == "PATCH" && resource == "/properties/reported":
		var patch map[string]any
		if err := json.Unmarshal(payload(m), &patch); err != nil || patch == nil {
			fail(&registry.Error{Status: http.StatusBadRequest, Code: "ArgumentInvalid", Message: "The reported properties patch must be a JSON object."})
			break
		}
		v, err := h.cfg.Registry.ReportProperties(ctx, id.Hub.Name, id.DeviceID, id.ModuleID, patch)
		if err != nil {
			fail(err)
			break
		}
		status, version = http.StatusNoContent, v
	case (op == "PUT" || op == "DELETE") && resource == desiredNotifications:
		ch := h.channels.find(h.channels.twins, keyOf(id), c)
		if ch == nil {
			fail(&registry.Error{Status: http.StatusBadRequest, Code: "ArgumentInvalid", Message: "Attach the twin receiver link before subscribing."})
			break
		}
		ch.desired.Store(op == "PUT")
	default:
		fail(&registry.Error{Status: http.StatusBadRequest, Code: "ArgumentInvalid",
			Message: sprintf("Unsupported twin operation '%s' on '%s'.", op, resource)})
	}
	resp := &wire.Message{Properties: &wire.Properties{CorrelationID: m.Properties.CorrelationID},
		Annotations: wire.Map{{Key: wire.Symbol("status"), Value: int32(status)}}, Data: [][]byte{body}}
	if version > 0 {
		resp.Annotations = append(resp.Annotations, wire.KV{Key: wire.Symbol("version"), Value: version})
	}
	ch := h.channels.find(h.channels.twins, keyOf(id), c)
	if ch == nil {
		h.cfg.Log.Info("twin response dropped: no twin receiver link", "device", id.DeviceID)
		return
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case ch.out <- resp:
	case <-ctx.Done():
	case <-t.C:
		h.cfg.Log.Warn("twin response dropped: the device does not take its responses", "device", id.DeviceID)
	}
}

// DesiredChanged pushes a desired-properties patch to the devices
// subscribed over AMQP (register it as a registry twin-change hook).
func (h *Handler) DesiredChanged(_ context.Context, tc registry.TwinChange) {
	if tc.Desired == nil {
		return
	}
	body, _ := json.Marshal(tc.Desired)
	for _, ch := range h.channels.all(h.channels.twins, identityKey{strings.ToLower(tc.Hub), tc.DeviceID, tc.ModuleID}) {
		if !ch.desired.Load() {
			continue
		}
		select {
		case ch.out <- &wire.Message{Properties: &wire.Properties{}, Data: [][]byte{body}}:
		default:
			h.cfg.Log.Warn("desired property update dropped: the device does not take its twin messages", "device", tc.DeviceID)
		}
	}
}
