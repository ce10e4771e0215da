package devicemqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/mqtt"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

// Publisher stores device-to-cloud messages durably. StartTelemetry begins
// storing one and returns a wait for the outcome, so a connection can have
// several in flight (its device's QoS 1 window) while still acknowledging
// each only once stored.
type Publisher interface {
	PublishTelemetry(ctx context.Context, id deviceauth.Identity, m telemetry.Message) error
	StartTelemetry(id deviceauth.Identity, m telemetry.Message) (func(ctx context.Context) error, error)
}

// Hub implements mqtt.Authenticator and mqtt.Handler over the registry.
type Hub struct {
	auth      *deviceauth.Authenticator
	registry  *registry.Service
	publisher Publisher
	log       *slog.Logger
	now       func() time.Time

	server atomic.Pointer[mqtt.Server]

	// sessions holds the authenticated identity of each connected device.
	sessions sync.Map // mqtt.DeviceKey → deviceauth.Identity
	presence *Presence
	methods  methodCalls
	c2d      *c2dPusher
	// methodTransports take direct methods for devices not listening for
	// them over MQTT (AMQP). Set before use.
	methodTransports []MethodTransport
	// desiredTransports push desired-property patches over other
	// protocols (AMQP). Set before use.
	desiredTransports []DesiredTransport
	// relay reaches devices connected to other nodes; nil on a node that
	// has no others (embedded NATS).
	relay *Relay
	// onConnection hooks run after a device connects or disconnects.
	onConnection []func(ctx context.Context, hub, deviceID, moduleID string, connected bool)
}

// OnConnection registers a hook run after each connect and disconnect.
func (h *Hub) OnConnection(f func(ctx context.Context, hub, deviceID, moduleID string, connected bool)) {
	h.onConnection = append(h.onConnection, f)
}

// New builds the device side of the hub. Attach the mqtt.Server with
// SetServer once it exists.
func New(auth *deviceauth.Authenticator, reg *registry.Service, pub Publisher, presence *Presence, log *slog.Logger, now func() time.Time) *Hub {
	h := &Hub{auth: auth, registry: reg, publisher: pub, presence: presence, log: log, now: now}
	h.methods.pending = map[string]chan methodResult{}
	return h
}

// Publisher is where device telemetry is stored (shared with the other
// device transports, so the hub's rate limit covers them all).
func (h *Hub) Publisher() Publisher { return h.publisher }

// SetServer attaches the MQTT server deliveries go through.
func (h *Hub) SetServer(s *mqtt.Server) { h.server.Store(s) }

// Authenticate implements mqtt.Authenticator.
func (h *Hub) Authenticate(ctx context.Context, info mqtt.ConnectInfo) (mqtt.Identity, error) {
	var (
		id  deviceauth.Identity
		err error
	)
	if info.Password != "" {
		id, err = h.auth.SAS(ctx, info.Host, info.DeviceID, info.ModuleID, info.Password)
	} else {
		host := info.ServerName
		if host == "" {
			host = info.Host
		}
		id, err = h.auth.X509(ctx, host, info.DeviceID, info.ModuleID, info.PeerCertificates)
	}
	var ae *deviceauth.Error
	if errors.As(err, &ae) {
		h.log.Info("device connection refused", "device", info.DeviceID, "module", info.ModuleID, "host", info.Host, "reason", ae.Reason)
		if ae.BadCredentials {
			return mqtt.Identity{}, fmt.Errorf("%w: %s", mqtt.ErrBadCredentials, ae.Reason)
		}
		return mqtt.Identity{}, fmt.Errorf("%w: %s", mqtt.ErrNotAuthorized, ae.Reason)
	}
	if err != nil {
		return mqtt.Identity{}, fmt.Errorf("%w: %v", mqtt.ErrServerUnavailable, err)
	}
	method := mqtt.AuthSAS
	if id.AuthMethod == "x509" {
		method = mqtt.AuthX509SelfSigned
	}
	mid := mqtt.Identity{Hub: id.Hub.Name, DeviceID: id.DeviceID, ModuleID: id.ModuleID, AuthMethod: method, ExpiresAt: id.ExpiresAt}
	h.sessions.Store(mid.Key(), id)
	return mid, nil
}

// bagToSystem maps property-bag system names to stream system properties.
var bagToSystem = map[string]string{
	mqtt.PropMessageID:       telemetry.PropMessageID,
	mqtt.PropCorrelationID:   telemetry.PropCorrelationID,
	mqtt.PropUserID:          telemetry.PropUserID,
	mqtt.PropContentType:     telemetry.PropContentType,
	mqtt.PropContentEncoding: telemetry.PropContentEncoding,
	mqtt.PropInterfaceID:     telemetry.PropInterfaceID,
	mqtt.PropSubject:         telemetry.PropComponent,
}

// Telemetry implements mqtt.TelemetryHandler: the message is stored before
// the PUBACK.
func (h *Hub) Telemetry(ctx context.Context, id mqtt.Identity, msg mqtt.Message) error {
	dev, m, err := h.telemetryMessage(id, msg)
	if err != nil {
		return err
	}
	return h.publisher.PublishTelemetry(ctx, dev, m)
}

// StartTelemetry implements mqtt.TelemetryStarter: the connection PUBACKs
// once the returned wait reports the message stored.
func (h *Hub) StartTelemetry(id mqtt.Identity, msg mqtt.Message) (func(ctx context.Context) error, error) {
	dev, m, err := h.telemetryMessage(id, msg)
	if err != nil {
		return nil, err
	}
	return h.publisher.StartTelemetry(dev, m)
}

// telemetryMessage maps an MQTT property bag onto IoT Hub's system and
// application properties.
func (h *Hub) telemetryMessage(id mqtt.Identity, msg mqtt.Message) (deviceauth.Identity, telemetry.Message, error) {
	v, ok := h.sessions.Load(id.Key())
	if !ok {
		return deviceauth.Identity{}, telemetry.Message{}, errors.New("devicemqtt: telemetry from an unknown session")
	}
	m := telemetry.Message{Payload: msg.Payload, System: map[string]string{}, App: map[string]string{}}
	for k, val := range msg.Properties {
		if sys, ok := bagToSystem[k]; ok {
			m.System[sys] = val
			continue
		}
		if mqtt.IsSystemProperty(k) {
			continue // $.to, $.exp, $.on: not stamped on telemetry
		}
		m.App[k] = val
	}
	h.presence.active(id.Key(), h.now())
	return v.(deviceauth.Identity), m, nil
}

// Connected implements mqtt.ConnectionObserver.
func (h *Hub) Connected(ctx context.Context, id mqtt.Identity) {
	h.presence.set(id.Key(), true, h.now())
	if h.relay != nil {
		h.relay.attach(id.Key())
	}
	h.NotifyC2D(id.Key())
	for _, f := range h.onConnection {
		f(ctx, id.Hub, id.DeviceID, id.ModuleID, true)
	}
}

// Disconnected implements mqtt.ConnectionObserver.
func (h *Hub) Disconnected(ctx context.Context, id mqtt.Identity) {
	h.presence.set(id.Key(), false, h.now())
	if h.relay != nil {
		h.relay.detach(id.Key())
	}
	for _, f := range h.onConnection {
		f(ctx, id.Hub, id.DeviceID, id.ModuleID, false)
	}
}

// TwinGet implements mqtt.TwinHandler.
func (h *Hub) TwinGet(ctx context.Context, id mqtt.Identity, _ string) mqtt.TwinResponse {
	doc, err := h.registry.DeviceTwin(ctx, id.Hub, id.DeviceID, id.ModuleID)
	if err != nil {
		return errorResponse(err)
	}
	b, _ := json.Marshal(doc)
	return mqtt.TwinResponse{Status: http.StatusOK, Body: b}
}

// TwinReported implements mqtt.TwinHandler.
func (h *Hub) TwinReported(ctx context.Context, id mqtt.Identity, _ string, patch []byte) mqtt.TwinResponse {
	var p map[string]any
	if err := json.Unmarshal(patch, &p); err != nil || p == nil {
		return mqtt.TwinResponse{Status: http.StatusBadRequest, Body: []byte(`{"errorCode":400004,"message":"The reported properties patch must be a JSON object."}`)}
	}
	v, err := h.registry.ReportProperties(ctx, id.Hub, id.DeviceID, id.ModuleID, p)
	if err != nil {
		return errorResponse(err)
	}
	h.presence.active(id.Key(), h.now())
	return mqtt.TwinResponse{Status: http.StatusNoContent, Version: v}
}

func errorResponse(err error) mqtt.TwinResponse {
	e := registry.AsError(err)
	b, _ := json.Marshal(map[string]any{"errorCode": e.Status * 1000, "message": e.Message})
	return mqtt.TwinResponse{Status: e.Status, Body: b}
}

// DesiredTransport pushes desired-property patches over another protocol
// (AMQP) to the devices subscribed there.
type DesiredTransport interface {
	DesiredChanged(ctx context.Context, c registry.TwinChange)
}

// AddDesiredTransport adds a transport DesiredChanged pushes patches
// through besides MQTT. Call it before use.
func (h *Hub) AddDesiredTransport(t DesiredTransport) {
	h.desiredTransports = append(h.desiredTransports, t)
}

// DesiredChanged pushes a desired-properties patch to a connected device
// (registered as a registry twin-change hook): over this node's
// connections, or through the relay to the node holding the device. A
// device that is not connected gets the whole twin when it next asks.
func (h *Hub) DesiredChanged(ctx context.Context, c registry.TwinChange) {
	if c.Desired == nil {
		return
	}
	h.deliverDesired(ctx, c)
	if h.relay != nil {
		h.relay.desiredChanged(c)
	}
}

// deliverDesired pushes a patch over this node's connections.
func (h *Hub) deliverDesired(ctx context.Context, c registry.TwinChange) {
	for _, t := range h.desiredTransports {
		t.DesiredChanged(ctx, c)
	}
	s := h.server.Load()
	if s == nil {
		return
	}
	b, _ := json.Marshal(c.Desired)
	v, _ := c.Desired["$version"].(int64)
	err := s.Deliver(ctx, mqtt.DeviceKey{Hub: c.Hub, DeviceID: c.DeviceID, ModuleID: c.ModuleID},
		mqtt.Delivery{Kind: mqtt.DeliverDesiredPatch, Payload: b, Version: v})
	if err != nil && !errors.Is(err, mqtt.ErrNotConnected) && !errors.Is(err, mqtt.ErrNotSubscribed) {
		h.log.Warn("desired property notification", "device", c.DeviceID, "err", err)
	}
}

// MethodResponse implements mqtt.MethodHandler.
func (h *Hub) MethodResponse(_ context.Context, _ mqtt.Identity, rid string, status int, payload []byte) {
	h.methods.complete(rid, methodResult{status: status, payload: payload})
}

// MethodResult is a device's answer to a direct method.
type MethodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// MethodError is a direct-method failure with IoT Hub's error code.
type MethodError struct {
	Status  int
	Code    string
	Message string
}

func (e *MethodError) Error() string { return e.Code + ": " + e.Message }

type methodResult struct {
	status  int
	payload []byte
}

type methodCalls struct {
	mu      sync.Mutex
	next    atomic.Uint64
	pending map[string]chan methodResult
}

func (m *methodCalls) add() (string, chan methodResult) {
	rid := strconv.FormatUint(m.next.Add(1), 10)
	ch := make(chan methodResult, 1)
	m.mu.Lock()
	m.pending[rid] = ch
	m.mu.Unlock()
	return rid, ch
}

func (m *methodCalls) complete(rid string, r methodResult) {
	m.mu.Lock()
	ch, ok := m.pending[rid]
	delete(m.pending, rid)
	m.mu.Unlock()
	if ok {
		ch <- r
	}
}

func (m *methodCalls) drop(rid string) {
	m.mu.Lock()
	delete(m.pending, rid)
	m.mu.Unlock()
}

// MethodTransport delivers direct methods over another protocol (AMQP).
type MethodTransport interface {
	// SendMethod sends the request when the device listens for methods on
	// this transport (ok is false, and nothing is sent, otherwise); the
	// device's response is passed to respond. cancel forgets the request.
	SendMethod(ctx context.Context, hub, deviceID, moduleID, name string, payload json.RawMessage,
		respond func(status int, payload []byte)) (cancel func(), ok bool, err error)
}

// AddMethodTransport adds a transport tried, in order, for devices that
// do not listen for methods over MQTT. Call it before use.
func (h *Hub) AddMethodTransport(t MethodTransport) {
	h.methodTransports = append(h.methodTransports, t)
}

var errNotOnline = errors.New("devicemqtt: device not listening for methods")

// InvokeMethod calls a direct method on a connected device — over this
// node's connections, else through the relay on the node holding it — and
// waits up to timeout for its response.
func (h *Hub) InvokeMethod(ctx context.Context, hub, deviceID, moduleID, name string, payload json.RawMessage, timeout time.Duration) (MethodResult, error) {
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	res, err := h.invokeLocal(ctx, hub, deviceID, moduleID, name, payload, timeout)
	if k := (mqtt.DeviceKey{Hub: hub, DeviceID: deviceID, ModuleID: moduleID}); errors.Is(err, errNotOnline) && h.relay != nil && !h.relay.isLocal(k) {
		res, err = h.relay.invoke(ctx, k, name, payload, timeout)
	}
	if errors.Is(err, errNotOnline) {
		return MethodResult{}, &MethodError{Status: http.StatusNotFound, Code: "DeviceNotOnline",
			Message: fmt.Sprintf("Device %s is not connected or has not subscribed to direct methods.", deviceID)}
	}
	return res, err
}

// invokeLocal runs a method over this node's connections; errNotOnline
// when none of them listens for methods.
func (h *Hub) invokeLocal(ctx context.Context, hub, deviceID, moduleID, name string, payload json.RawMessage, timeout time.Duration) (MethodResult, error) {
	rid, ch := h.methods.add()
	defer h.methods.drop(rid)
	err := errNotOnline
	if s := h.server.Load(); s != nil {
		err = s.Deliver(ctx, mqtt.DeviceKey{Hub: hub, DeviceID: deviceID, ModuleID: moduleID},
			mqtt.Delivery{Kind: mqtt.DeliverMethodRequest, Payload: payload, MethodName: name, RequestID: rid})
	}
	if errors.Is(err, errNotOnline) || errors.Is(err, mqtt.ErrNotConnected) || errors.Is(err, mqtt.ErrNotSubscribed) {
		err = errNotOnline
		respond := func(status int, payload []byte) {
			h.methods.complete(rid, methodResult{status: status, payload: payload})
		}
		for _, t := range h.methodTransports {
			cancel, ok, terr := t.SendMethod(ctx, hub, deviceID, moduleID, name, payload, respond)
			if ok || terr != nil {
				err = terr
				if cancel != nil {
					defer cancel()
				}
				break
			}
		}
	}
	if err != nil {
		return MethodResult{}, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		p := json.RawMessage(r.payload)
		if len(p) == 0 || !json.Valid(p) {
			b, _ := json.Marshal(string(r.payload))
			p = b
			if len(r.payload) == 0 {
				p = json.RawMessage("null")
			}
		}
		return MethodResult{Status: r.status, Payload: p}, nil
	case <-t.C:
		return MethodResult{}, &MethodError{Status: http.StatusGatewayTimeout, Code: "GatewayTimeout",
			Message: fmt.Sprintf("Timed out waiting for the response from device %s to method '%s' after %s.", deviceID, name, timeout)}
	case <-ctx.Done():
		return MethodResult{}, ctx.Err()
	}
}
