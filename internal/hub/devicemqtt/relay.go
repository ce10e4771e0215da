package devicemqtt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/outpost-iot/outpost/internal/hub/mqtt"
	"github.com/outpost-iot/outpost/internal/hub/registry"
)

// Relay makes the devices connected to one node reachable from the
// others, over core NATS (no JetStream): while a device is connected to a
// node, that node subscribes to the device's subject
//
//	{prefix}.node.device.{hub}.{base64url(deviceId)}[.{base64url(moduleId)}]
//
// and a node that has to reach a device it does not hold sends there: a
// direct method is a request whose reply is the device's response (no
// responders means no node holds the device: DeviceNotOnline at once); a
// desired-property patch and a "cloud-to-device message queued" wake-up
// are plain publishes.
//
// Why core NATS and not JetStream: nothing here is state. The
// cloud-to-device messages are already durable on their JetStream queue
// and the twin in the store; what crosses nodes is a live call for a
// connection that exists now (a method request must not be stored and
// replayed to a device that reconnects minutes later — IoT Hub fails it),
// or a notice whose loss costs a delay, not data (a device gets the whole
// twin when it reconnects; a queued message is pushed at the next connect
// or send). Core NATS costs one hop and no disk write, and its per-subject
// interest is exactly "which node holds this device".
//
// A device's own node never goes through NATS: the relay is asked only
// after the local connections failed, and only when the device is not
// connected locally.
type Relay struct {
	nc     *nats.Conn
	prefix string
	log    *slog.Logger
	in     chan *nats.Msg
	hub    *Hub

	mu    sync.Mutex
	local map[mqtt.DeviceKey]*localDevice
	// closed: Run ended, nothing more is subscribed.
	closed bool
}

// localDevice counts a device's connections on this node (MQTT and AMQP
// connections, and an old one still closing while a new one opened).
type localDevice struct {
	n   int
	sub *nats.Subscription
}

// relayInbox bounds what the relay holds before handling: beyond it NATS
// drops messages for this node and reports a slow consumer.
const relayInbox = 4096

// Header naming what a relayed message is.
const (
	relayKind        = "Outpost-Relay"
	relayKindMethod  = "method"
	relayKindDesired = "desired"
	relayKindC2D     = "c2d"
)

// NewRelay builds a relay on nc; subjectPrefix is the bus's subject prefix
// (bus.Subject()), so installations sharing a NATS never see each other's
// devices. Attach it with Hub.SetRelay and run it with Run.
func NewRelay(nc *nats.Conn, subjectPrefix string, log *slog.Logger) *Relay {
	return &Relay{nc: nc, prefix: subjectPrefix + ".node.device.", log: log,
		in: make(chan *nats.Msg, relayInbox), local: map[mqtt.DeviceKey]*localDevice{}}
}

// SetRelay makes devices on other nodes reachable through r, and this
// node's devices reachable from them. Call it before serving.
func (h *Hub) SetRelay(r *Relay) {
	h.relay = r
	r.hub = h
}

// subject is the device's relay subject.
func (r *Relay) subject(k mqtt.DeviceKey) string {
	s := r.prefix + strings.ToLower(k.Hub) + "." + base64.RawURLEncoding.EncodeToString([]byte(k.DeviceID))
	if k.ModuleID != "" {
		s += "." + base64.RawURLEncoding.EncodeToString([]byte(k.ModuleID))
	}
	return s
}

// attach records a connection of the device on this node, subscribing to
// its subject at the first. It returns once the NATS server has the
// subscription: the connection's requests (a twin GET first of all) are
// handled after it, so a desired-property change made on another node
// after the device read its twin is never published to no one.
func (r *Relay) attach(k mqtt.DeviceKey) {
	r.mu.Lock()
	d := r.local[k]
	if d == nil {
		d = &localDevice{}
		r.local[k] = d
	}
	d.n++
	if d.sub != nil || r.closed {
		r.mu.Unlock()
		return
	}
	sub, err := r.nc.ChanSubscribe(r.subject(k), r.in)
	if err != nil {
		r.mu.Unlock()
		// The device still works on this node; other nodes see it offline.
		r.log.Warn("relay: device not reachable from other nodes", "hub", k.Hub, "device", k.DeviceID, "err", err)
		return
	}
	d.sub = sub
	r.mu.Unlock()
	if err := r.nc.FlushTimeout(2 * time.Second); err != nil {
		r.log.Warn("relay: device may not be reachable from other nodes yet", "hub", k.Hub, "device", k.DeviceID, "err", err)
	}
}

// detach forgets a connection, unsubscribing at the last. Drain, not
// Unsubscribe: a request the server routed here before it saw the
// unsubscription still reaches Run (and is answered DeviceNotOnline)
// instead of being dropped while its caller waits out the timeout.
func (r *Relay) detach(k mqtt.DeviceKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.local[k]
	if d == nil {
		return
	}
	if d.n--; d.n > 0 {
		return
	}
	delete(r.local, k)
	if d.sub != nil {
		_ = d.sub.Drain()
	}
}

// isLocal reports whether the device has a connection on this node.
func (r *Relay) isLocal(k mqtt.DeviceKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.local[k] != nil
}

// methodRequest and methodReply are a relayed direct method.
type methodRequest struct {
	Name      string          `json:"name"`
	Payload   json.RawMessage `json:"payload"`
	TimeoutMS int64           `json:"timeoutMs"`
}

type methodReply struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Error   *MethodError    `json:"error,omitempty"`
}

// invoke asks the node holding the device to run the method there.
// errNotOnline means no node holds it.
func (r *Relay) invoke(ctx context.Context, k mqtt.DeviceKey, name string, payload json.RawMessage, timeout time.Duration) (MethodResult, error) {
	body, _ := json.Marshal(methodRequest{Name: name, Payload: payload, TimeoutMS: timeout.Milliseconds()})
	msg := nats.NewMsg(r.subject(k))
	msg.Header.Set(relayKind, relayKindMethod)
	msg.Data = body
	// The holder answers GatewayTimeout itself after timeout; the margin
	// covers the hops.
	rctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	resp, err := r.nc.RequestMsgWithContext(rctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return MethodResult{}, errNotOnline
	case err != nil && ctx.Err() != nil:
		return MethodResult{}, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return MethodResult{}, &MethodError{Status: http.StatusGatewayTimeout, Code: "GatewayTimeout",
			Message: fmt.Sprintf("Timed out waiting for the response from device %s to method '%s' after %s.", k.DeviceID, name, timeout)}
	case err != nil:
		return MethodResult{}, fmt.Errorf("devicemqtt: relay method to another node: %w", err)
	}
	var rep methodReply
	if err := json.Unmarshal(resp.Data, &rep); err != nil {
		return MethodResult{}, fmt.Errorf("devicemqtt: relay method reply: %w", err)
	}
	if rep.Error != nil {
		if rep.Error.Code == "DeviceNotOnline" {
			return MethodResult{}, errNotOnline
		}
		return MethodResult{}, rep.Error
	}
	return MethodResult{Status: rep.Status, Payload: rep.Payload}, nil
}

// desiredNotice is a relayed desired-property patch.
type desiredNotice struct {
	Desired json.RawMessage `json:"desired"`
	Version int64           `json:"version"`
}

// desiredChanged sends a desired-property patch to the node holding the
// device, when that is not this one.
func (r *Relay) desiredChanged(c registry.TwinChange) {
	k := mqtt.DeviceKey{Hub: c.Hub, DeviceID: c.DeviceID, ModuleID: c.ModuleID}
	if r.isLocal(k) {
		return
	}
	raw, err := json.Marshal(c.Desired)
	if err != nil {
		return
	}
	v, _ := c.Desired["$version"].(int64)
	body, _ := json.Marshal(desiredNotice{Desired: raw, Version: v})
	r.publish(k, relayKindDesired, body)
}

// c2dQueued wakes the pusher of the node holding the device, when that is
// not this one.
func (r *Relay) c2dQueued(k mqtt.DeviceKey) {
	if r.isLocal(k) {
		return
	}
	r.publish(k, relayKindC2D, nil)
}

func (r *Relay) publish(k mqtt.DeviceKey, kind string, body []byte) {
	msg := nats.NewMsg(r.subject(k))
	msg.Header.Set(relayKind, kind)
	msg.Data = body
	if err := r.nc.PublishMsg(msg); err != nil {
		r.log.Warn("relay: notice to another node not sent", "kind", kind, "hub", k.Hub, "device", k.DeviceID, "err", err)
	}
}

// Run handles what other nodes send this node's devices until ctx ends.
// Method calls run concurrently (each waits for its device); desired
// patches and wake-ups are handled in arrival order.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Once this node stops answering, other nodes must see its devices
	// offline at once (no responders) rather than wait out a method's
	// timeout while the connections drain.
	defer r.stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-r.in:
			k, ok := r.keyOf(m.Subject)
			if !ok {
				continue
			}
			switch m.Header.Get(relayKind) {
			case relayKindMethod:
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.answerMethod(ctx, k, m)
				}()
			case relayKindDesired:
				r.deliverDesired(ctx, k, m.Data)
			case relayKindC2D:
				r.hub.wakeC2D(k)
			}
		}
	}
}

// stop unsubscribes every device, waits until the server has seen it (so
// whatever it routed here before is in the inbox), then answers the
// method calls waiting there as DeviceNotOnline.
func (r *Relay) stop() {
	r.mu.Lock()
	r.closed = true
	for _, d := range r.local {
		if d.sub != nil {
			_ = d.sub.Drain()
			d.sub = nil
		}
	}
	r.mu.Unlock()
	_ = r.nc.FlushTimeout(2 * time.Second)
	for {
		select {
		case m := <-r.in:
			if m.Header.Get(relayKind) == relayKindMethod {
				b, _ := json.Marshal(methodReply{Error: &MethodError{Status: http.StatusNotFound, Code: "DeviceNotOnline"}})
				_ = m.Respond(b)
			}
		default:
			return
		}
	}
}

// keyOf reads the device back from its subject.
func (r *Relay) keyOf(subject string) (mqtt.DeviceKey, bool) {
	rest, ok := strings.CutPrefix(subject, r.prefix)
	if !ok {
		return mqtt.DeviceKey{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return mqtt.DeviceKey{}, false
	}
	dev, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return mqtt.DeviceKey{}, false
	}
	k := mqtt.DeviceKey{Hub: parts[0], DeviceID: string(dev)}
	if len(parts) == 3 {
		mod, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			return mqtt.DeviceKey{}, false
		}
		k.ModuleID = string(mod)
	}
	return k, true
}

func (r *Relay) answerMethod(ctx context.Context, k mqtt.DeviceKey, m *nats.Msg) {
	var req methodRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return
	}
	var rep methodReply
	res, err := r.hub.invokeLocal(ctx, k.Hub, k.DeviceID, k.ModuleID, req.Name, req.Payload, time.Duration(req.TimeoutMS)*time.Millisecond)
	var me *MethodError
	switch {
	case err == nil:
		rep.Status, rep.Payload = res.Status, res.Payload
	case errors.Is(err, errNotOnline):
		rep.Error = &MethodError{Status: http.StatusNotFound, Code: "DeviceNotOnline"}
	case errors.As(err, &me):
		rep.Error = me
	default:
		rep.Error = &MethodError{Status: http.StatusInternalServerError, Code: "ServerError", Message: err.Error()}
	}
	b, _ := json.Marshal(rep)
	if err := m.Respond(b); err != nil {
		r.log.Warn("relay: method response to another node not sent", "hub", k.Hub, "device", k.DeviceID, "err", err)
	}
}

// deliverTimeout bounds pushing one relayed patch to a device whose
// connection does not drain: the relay handles patches in order.
const deliverTimeout = 2 * time.Second

func (r *Relay) deliverDesired(ctx context.Context, k mqtt.DeviceKey, data []byte) {
	var n desiredNotice
	if err := json.Unmarshal(data, &n); err != nil {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(n.Desired))
	dec.UseNumber() // pushed on as the other node wrote it
	var desired map[string]any
	if err := dec.Decode(&desired); err != nil || desired == nil {
		return
	}
	desired["$version"] = n.Version
	dctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	defer cancel()
	r.hub.deliverDesired(dctx, registry.TwinChange{Hub: k.Hub, DeviceID: k.DeviceID, ModuleID: k.ModuleID, Desired: desired})
}
