package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/devicemqtt"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
	"github.com/outpost-iot/outpost/internal/hub/hubresource"
	"github.com/outpost-iot/outpost/internal/hub/jobs"
	"github.com/outpost-iot/outpost/internal/hub/mqtt"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
	"github.com/outpost-iot/outpost/internal/hub/sources"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/hub/throttle"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/routing/engine"
	"github.com/outpost-iot/outpost/internal/store"
)

// hubPlane is the IoT hub's runtime: the hub directory, the registry, the
// telemetry streams and the service API.
type hubPlane struct {
	c2d       *c2d.Queue
	presence  *devicemqtt.Presence
	sessions  *devicemqtt.Hub
	mqtt      *mqtt.Server
	mqttLn    net.Listener
	devices   *deviceauth.Authenticator
	hubs      *hub.Directory
	registry  *registry.Service
	telemetry *telemetry.Streams
	service   *serviceapi.Handler
	files     *fileupload.Service
	routing   *engine.Engine
	jobs      *jobs.Runner
	// relay and changes connect this node to the other nodes of the
	// installation; both nil with embedded NATS (one node).
	relay   *devicemqtt.Relay
	changes *hubChanges
	// limits are the hub throttles; members, with other nodes, keeps
	// their per-hub share in step with the live node count.
	limits  *throttle.Limiter
	members *throttle.Membership
	// maxConns is the node's device connection cap (0: none).
	maxConns int
}

func (a *App) buildHub() error {
	now := time.Now
	a.hub.hubs = hub.NewDirectory(a.store.Resources(), a.cfg.DNSSuffix, "")
	a.hub.presence = devicemqtt.NewPresence()
	a.hub.registry = registry.New(a.store.Devices(), a.hub.presence, now)
	a.hub.telemetry = telemetry.New(a.bus, now)
	a.hub.devices = deviceauth.New(a.hub.hubs, a.hub.registry, func(ctx context.Context, h hub.Hub) ([]*x509.Certificate, error) {
		return hubresource.VerifiedCAs(ctx, a.store.Resources(), h.ResourceID)
	}, now)
	a.hub.limits = throttle.New(throttle.Limits{
		HubD2C: a.cfg.Hub.D2CMessagesPerSecond, DeviceD2C: a.cfg.Hub.DeviceD2CMessagesPerSecond,
		Registry: a.cfg.Hub.RegistryOperationsPerSecond, TwinReads: a.cfg.Hub.TwinReadsPerSecond,
		TwinUpdates: a.cfg.Hub.TwinUpdatesPerSecond, Methods: a.cfg.Hub.MethodsPerSecond,
	}, throttle.NewMetrics(a.metrics))
	throttle.RegisterNodes(a.metrics, a.hub.limits)
	publisher := telemetryPublisher{streams: a.hub.telemetry, hubs: a.hub.hubs, limit: a.hub.limits}
	a.hub.sessions = devicemqtt.New(a.hub.devices, a.hub.registry, publisher, a.hub.presence, a.log.With("component", "devices"), now)
	if a.cfg.NATS.URL != "" {
		// Other nodes may share this NATS: devices connected to any node
		// are reachable from every node, and hub changes reach them all.
		a.hub.relay = devicemqtt.NewRelay(a.bus.Conn(), a.bus.Subject(), a.log.With("component", "relay"))
		a.hub.sessions.SetRelay(a.hub.relay)
		a.hub.changes = newHubChanges(a.bus.Conn(), a.bus.Subject("node", "hubs", "changed"), a.log.With("component", "hub-changes"))
		// Per-hub throttles hold across the nodes: each takes its share.
		a.hub.members = throttle.NewMembership(a.bus.Conn(), a.bus.Subject("node", "heartbeat"), a.nodeID, a.hub.limits,
			a.log.With("component", "membership"))
	}
	a.hub.registry.OnTwinChange(a.hub.sessions.DesiredChanged)
	// Twin, lifecycle and connection events for routing.
	events := sources.New(a.hub.telemetry, a.eventRouted, a.log.With("component", "hub-events"), now)
	a.hub.registry.OnTwinChange(events.TwinChanged)
	a.hub.registry.OnLifecycle(events.Lifecycle)
	a.hub.sessions.OnConnection(events.Connection)
	a.hub.c2d = c2d.New(a.bus, now)
	a.hub.sessions.EnableC2D(a.hub.c2d, a.hub.hubs)
	files, err := fileupload.New(fileupload.Config{
		Bus: a.bus, Egress: a.targets.egress, Tokens: a, Log: a.log.With("component", "fileupload"), Now: now,
	})
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	a.hub.files = files
	a.hub.service = serviceapi.New(serviceapi.Config{
		C2D:     httpC2D{a.hub.c2d},
		Methods: a.hub.sessions, Devices: a.hub.devices, Publisher: publisher,
		Hubs: a.hub.hubs, Registry: a.hub.registry,
		Bearer: iotHubBearer{a.validator}, Authz: dataAuthorizer{a.rbac},
		Files: files,
		Log:   a.log.With("component", "hub-service"), Now: now,
		Jobs:     jobsAPI{a},
		Throttle: a.hub.limits,
	})
	return nil
}

// eventRouted says whether an enabled route of a hub reads an event
// source (sources.Routed). A hub that can't be looked up gets its events
// stored: an event kept for nothing costs less than one lost.
func (a *App) eventRouted(ctx context.Context, hub, source string) bool {
	h, ok, err := a.hub.hubs.Peek(ctx, hub)
	if err != nil || !ok {
		return true
	}
	return h.EventSources.Has(source)
}

// listenMQTT binds the MQTT over TLS listener and builds the server.
func (a *App) listenMQTT() error {
	maxConns := a.cfg.Hub.MaxDeviceConnections
	if maxConns == 0 {
		maxConns = defaultMaxDeviceConnections(a.log)
	}
	a.hub.maxConns = maxConns
	srv, err := mqtt.New(mqtt.Config{MaxConnections: maxConns}, a.hub.sessions,
		throttledTwins{Hub: a.hub.sessions, limits: a.hub.limits}, a.log.With("component", "mqtt"))
	if err != nil {
		return fmt.Errorf("app: mqtt: %w", err)
	}
	m := mqtt.NewMetrics(a.metrics)
	m.Reason = func(err error) string {
		if errors.Is(err, throttle.ErrThrottled) {
			return "throttled"
		}
		return ""
	}
	srv.SetMetrics(m)
	a.hub.sessions.SetServer(srv)
	a.hub.mqtt = srv
	tlsCfg := a.ca.ServerTLSConfig()
	// X.509 devices present a client certificate; SAS devices don't.
	tlsCfg.ClientAuth = tls.RequestClientCert
	ln, err := net.Listen("tcp", a.cfg.MQTTAddress())
	if err != nil {
		return fmt.Errorf("app: mqtt listen %s: %w", a.cfg.MQTTAddress(), err)
	}
	a.hub.mqttLn = tls.NewListener(ln, tlsCfg)
	return nil
}

// serveMQTT runs the MQTT endpoint until ctx ends, then drains it. On a
// node with others it also runs what connects it to them: the relay that
// reaches this node's devices for them, and the hub change notices.
func (a *App) serveMQTT(ctx context.Context) error {
	var peers sync.WaitGroup
	defer peers.Wait()
	if a.hub.relay != nil {
		peers.Add(3)
		go func() { defer peers.Done(); _ = a.hub.relay.Run(ctx) }()
		go func() { defer peers.Done(); a.hub.changes.run(ctx, a.reloadHub, a.reloadHubs) }()
		go func() { defer peers.Done(); _ = a.hub.members.Run(ctx) }()
	}
	err := a.hub.mqtt.Serve(ctx, a.hub.mqttLn)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	_ = a.hub.mqtt.Shutdown(sctx)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, mqtt.ErrServerClosed) {
		return fmt.Errorf("app: mqtt: %w", err)
	}
	return nil
}

// MQTTAddr is the bound MQTT over TLS address.
func (a *App) MQTTAddr() net.Addr { return a.hub.mqttLn.Addr() }

// hubRuntime makes the hub runtime follow the IotHubs resources.
type hubRuntime struct{ p *hubPlane }

var _ hubresource.Runtime = hubRuntime{}

func (r hubRuntime) EnsureHub(ctx context.Context, h hubresource.Hub) error {
	if err := r.p.telemetry.EnsureHub(ctx, h.Name, h.RetentionDays); err != nil {
		return err
	}
	// The routers' consumers exist before any device message is stored
	// for them (routes in the hub's first PUT apply to its first message).
	if err := r.p.routing.EnsureRouter(ctx, h.Name, h.PartitionCount); err != nil {
		return err
	}
	if err := r.p.c2d.EnsureHub(ctx, h.Name); err != nil {
		return err
	}
	if err := r.p.files.EnsureHub(ctx, h.Name); err != nil {
		return err
	}
	// Routing follows every change of the hub (routes, endpoints, identity).
	r.p.routing.Reload(strings.ToLower(h.Name))
	r.p.refreshDirectory(ctx)
	r.p.changes.publish(h.Name)
	return nil
}

// refreshDirectory reads the hubs again now. Invalidating alone is not
// enough: device messages look their hub up with Peek, which answers from
// the copy held and refreshes behind, so the first message after a quiet
// spell would still take the old routing path.
func (p *hubPlane) refreshDirectory(ctx context.Context) {
	p.hubs.Invalidate()
	// Any name loads them all; on failure the next lookup reads again.
	_, _, _ = p.hubs.Get(ctx, "")
}

func (r hubRuntime) RemoveHub(ctx context.Context, name string) error {
	name = strings.ToLower(name)
	if err := r.p.registry.DeleteHub(ctx, name); err != nil {
		return fmt.Errorf("app: remove hub registry: %w", err)
	}
	if err := r.p.telemetry.RemoveHub(ctx, name); err != nil {
		return err
	}
	if err := r.p.c2d.RemoveHub(ctx, name); err != nil {
		return err
	}
	if err := r.p.files.RemoveHub(ctx, name); err != nil {
		return err
	}
	r.p.routing.RemoveHub(name)
	r.p.refreshDirectory(ctx)
	r.p.changes.publish(name)
	return nil
}

// reloadHub applies a change another node made to a hub: its routes (the
// engine re-reads the stored hub, or stops routing it when it is gone) and
// its settings in the directory.
func (a *App) reloadHub(ctx context.Context, name string) {
	a.hub.routing.Reload(strings.ToLower(name))
	a.hub.refreshDirectory(ctx)
}

// reloadHubs re-reads every hub, after this node may have missed notices.
func (a *App) reloadHubs(ctx context.Context) {
	list, err := a.store.Resources().List(ctx, store.ResourceFilter{Type: hubresource.Type})
	if err != nil {
		a.log.Warn("reloading hubs after a NATS reconnect failed; they reload at their next change", "err", err)
		return
	}
	for _, r := range list {
		a.hub.routing.Reload(strings.ToLower(r.Name))
	}
	a.hub.refreshDirectory(ctx)
}

// telemetryPublisher stamps the connection's system properties and stores
// the message durably, on the path the hub's current routing settings
// choose.
type telemetryPublisher struct {
	streams *telemetry.Streams
	hubs    *hub.Directory
	limit   *throttle.Limiter
}

// allow applies the device's and then the hub's device-to-cloud rate.
func (p telemetryPublisher) allow(id deviceauth.Identity) error {
	if err := p.limit.Allow(throttle.DeviceD2C, id.Hub.Name, id.DeviceID); err != nil {
		return err
	}
	return p.limit.Allow(throttle.HubD2C, id.Hub.Name, "")
}

func (p telemetryPublisher) PublishTelemetry(ctx context.Context, id deviceauth.Identity, m telemetry.Message) error {
	if err := p.allow(id); err != nil {
		return err
	}
	h := p.current(ctx, id.Hub)
	_, err := p.streams.Publish(ctx, h.PartitionCount, h.Path, stamp(id, m))
	return err
}

func (p telemetryPublisher) StartTelemetry(id deviceauth.Identity, m telemetry.Message) (func(context.Context) error, error) {
	if err := p.allow(id); err != nil {
		return nil, err
	}
	h := p.current(context.Background(), id.Hub)
	return p.streams.PublishAsync(h.PartitionCount, h.Path, stamp(id, m))
}

// current is the hub as the directory knows it now: a device connection
// keeps the hub it authenticated against, but routes may have changed
// since. When the directory can't answer, the connection's copy is used.
func (p telemetryPublisher) current(ctx context.Context, connected hub.Hub) hub.Hub {
	if h, ok, err := p.hubs.Peek(ctx, connected.Name); err == nil && ok {
		return h
	}
	return connected
}

// stamp adds the connection's system properties.
func stamp(id deviceauth.Identity, m telemetry.Message) telemetry.Message {
	if m.System == nil {
		m.System = map[string]string{}
	}
	scope := "device"
	if id.ModuleID != "" {
		scope = "module"
	}
	m.System[telemetry.PropAuthMethod] = `{"scope":"` + scope + `","type":"` + id.AuthMethod + `","issuer":"iothub","acceptingIpFilterRule":null}`
	m.System[telemetry.PropGenerationID] = id.GenerationID
	m.Hub, m.DeviceID, m.ModuleID = id.Hub.Name, id.DeviceID, id.ModuleID
	return m
}

// iotHubBearer validates bearer tokens for the IoT Hub audience.
type iotHubBearer struct{ v *identity.Validator }

func (b iotHubBearer) ValidateIoTHubToken(ctx context.Context, token string) (string, error) {
	c, err := b.v.Validate(ctx, token, identity.ServiceIoTHub)
	var ve *identity.ValidationError
	if errors.As(err, &ve) {
		return "", errors.New(ve.Reason)
	}
	if err != nil {
		return "", err
	}
	return c.ObjectID, nil
}

// dataAuthorizer answers data-plane RBAC questions.
type dataAuthorizer struct{ e *rbac.Engine }

func (d dataAuthorizer) AuthorizeData(principalID, action, scope string) (bool, string) {
	dec := d.e.Authorize(principalID, action, true, scope)
	return dec.Allowed, dec.Reason
}

// Telemetry exposes the hubs' telemetry streams (tests and local tools read
// the built-in endpoint through it).
func (a *App) Telemetry() *telemetry.Streams { return a.hub.telemetry }

// httpC2D serves the HTTPS device transport's cloud-to-device receive.
type httpC2D struct{ q *c2d.Queue }

func (h httpC2D) Receive(r *http.Request, id deviceauth.Identity) (*c2d.Message, error) {
	m, jm, err := h.q.Next(r.Context(), id.Hub.Name, id.DeviceID, id.ModuleID, devicemqtt.C2DSettings(id.Hub), 200*time.Millisecond)
	if err != nil || m == nil {
		return nil, err
	}
	h.q.Hold(m.LockToken, jm)
	return m, nil
}

func (h httpC2D) Settle(lockToken, how string) error { return h.q.Settle(lockToken, how) }

// fileUploadChecker checks file upload storage settings before an IotHubs
// PUT stores them, with the credentials they name.
type fileUploadChecker struct{ files *fileupload.Service }

func (c fileUploadChecker) CheckFileUpload(ctx context.Context, hubID string, storage json.RawMessage) error {
	props, _ := json.Marshal(map[string]any{"storageEndpoints": map[string]json.RawMessage{"$default": storage}})
	fu, err := hub.DecodeFileUpload(props)
	if err != nil {
		return err
	}
	id, err := arm.ParseResourceID(hubID)
	if err != nil {
		return err
	}
	st, err := fileupload.Interpret(id.Name(), fu)
	if err != nil {
		return err
	}
	return c.files.Check(ctx, st, hubID)
}

// hubChanges tells the other nodes of an installation that a hub was saved
// or removed, so their routers and hub directories reload it at once: a
// node only learns of changes it makes itself otherwise (the directory
// re-reads hubs every 2 s, the routing engine never). Core NATS, not
// JetStream: a notice only says "read the store again". A node that misses
// notices — disconnected from NATS when they were sent — re-reads every hub
// once it is connected again (checked every reconnectCheck).
type hubChanges struct {
	nc      *nats.Conn
	subject string
	node    string // this process, so it skips its own notices
	log     *slog.Logger
}

const (
	hubChangeNode  = "Outpost-Node"
	reconnectCheck = 5 * time.Second
)

func newHubChanges(nc *nats.Conn, subject string, log *slog.Logger) *hubChanges {
	return &hubChanges{nc: nc, subject: subject, node: uuid.NewString(), log: log}
}

// publish tells the other nodes that the hub changed (nil: no other nodes).
func (c *hubChanges) publish(hub string) {
	if c == nil {
		return
	}
	m := nats.NewMsg(c.subject)
	m.Header.Set(hubChangeNode, c.node)
	m.Data = []byte(strings.ToLower(hub))
	if err := c.nc.PublishMsg(m); err != nil {
		c.log.Warn("hub change not sent to the other nodes; they apply it at their next reload", "hub", hub, "err", err)
	}
}

// run applies other nodes' notices until ctx ends: reload(hub) for each,
// reloadAll after a reconnect.
func (c *hubChanges) run(ctx context.Context, reload func(ctx context.Context, hub string), reloadAll func(context.Context)) {
	in := make(chan *nats.Msg, 256)
	sub, err := c.nc.ChanSubscribe(c.subject, in)
	if err != nil {
		c.log.Error("hub changes of other nodes will not be applied until restart", "err", err)
		return
	}
	defer sub.Unsubscribe() //nolint:errcheck
	t := time.NewTicker(reconnectCheck)
	defer t.Stop()
	reconnects := c.nc.Stats().Reconnects
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-in:
			if m.Header.Get(hubChangeNode) != c.node {
				reload(ctx, string(m.Data))
			}
		case <-t.C:
			if n := c.nc.Stats().Reconnects; n != reconnects {
				reconnects = n
				reloadAll(ctx)
			}
		}
	}
}
