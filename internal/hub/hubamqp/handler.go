package hubamqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/hub/throttle"
)

// TelemetryStarter stores device-to-cloud messages as every device
// transport does (the hub's publisher): StartTelemetry begins storing one
// and returns a wait for the outcome.
type TelemetryStarter interface {
	StartTelemetry(id deviceauth.Identity, m telemetry.Message) (func(ctx context.Context) error, error)
}

// FileNotifications is the file upload notification queue
// (*fileupload.Service).
type FileNotifications interface {
	Receive(ctx context.Context, h hub.Hub, wait time.Duration) (*fileupload.Notification, string, error)
	Settle(ctx context.Context, lockToken string, how fileupload.Settlement) error
}

// Presence is told when a device (or module) starts using an AMQP
// connection and when that connection ends: connection state, its routing
// events, and a nudge for anything waiting to be pushed.
type Presence interface {
	DeviceConnected(ctx context.Context, hub, deviceID, moduleID string)
	DeviceDisconnected(ctx context.Context, hub, deviceID, moduleID string)
}

// Config holds a Handler's dependencies.
type Config struct {
	Hubs      *hub.Directory
	Registry  *registry.Service
	Devices   *deviceauth.Authenticator
	C2D       *c2d.Queue
	Telemetry TelemetryStarter
	// Files serves file notifications; nil refuses their link.
	Files FileNotifications
	// Service authenticates and authorizes service credentials (its Bearer
	// and Authz may be nil: bearer tokens are then refused).
	Service serviceapi.ServiceAuth
	// Presence may be nil.
	Presence Presence
	// C2DSent is called after a cloud-to-device message was queued (to
	// wake the MQTT pusher); may be nil.
	C2DSent func(hub, deviceID, moduleID string)
	// Admit, when not nil, is asked at each connection's open whether the
	// node has room for another device connection; release is called when
	// the connection ends. Refused, the connection is closed with
	// com.microsoft:server-busy, which the SDKs retry.
	Admit func() (release func(), ok bool)
	// Throttle applies the hub's twin rates to device twin requests; nil
	// throttles nothing.
	Throttle interface {
		Allow(kind throttle.Kind, hub, device string) error
	}
	Log *slog.Logger
	Now func() time.Time
}

// Handler is the amqp.Handler of IoT hub connections.
type Handler struct {
	cfg      Config
	channels channels
}

var _ amqp.Handler = (*Handler)(nil)

// New builds the handler. It starts nothing: every goroutine belongs to a
// connection's link.
func New(cfg Config) (*Handler, error) {
	var missing []string
	for name, ok := range map[string]bool{"Hubs": cfg.Hubs != nil, "Registry": cfg.Registry != nil,
		"Devices": cfg.Devices != nil, "C2D": cfg.C2D != nil, "Telemetry": cfg.Telemetry != nil} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("hubamqp: new: missing %s", strings.Join(missing, ", "))
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Service.Now == nil {
		cfg.Service.Now = cfg.Now
	}
	return &Handler{cfg: cfg, channels: channels{twins: map[identityKey][]*channel{}, methods: map[identityKey][]*channel{},
		pending: map[string]pendingCall{}}}, nil
}

// connState is what a connection learned: its hub, and the devices whose
// links it serves. The claims themselves live on the amqp.Conn.
type connState struct {
	hub string // the hub's name, resolved at open

	mu sync.Mutex
	// x509 are the devices authenticated by the TLS client certificate.
	x509 map[deviceKey]deviceauth.Identity
	// present are the devices told to Presence as connected.
	present map[deviceKey]bool
}

type deviceKey struct{ deviceID, moduleID string }

type connKey struct{}

func state(c *amqp.Conn) *connState {
	st, _ := c.Value(connKey{}).(*connState)
	return st
}

// Open implements amqp.Handler: the connection's host names its hub.
func (h *Handler) Open(ctx context.Context, c *amqp.Conn) error {
	if h.cfg.Admit != nil {
		release, ok := h.cfg.Admit()
		if !ok {
			return wire.Errorf("com.microsoft:server-busy",
				"This node serves its maximum of device connections (--max-device-connections); connect again later, or to another node.")
		}
		context.AfterFunc(c.Context(), release)
	}
	hb, err := h.cfg.Hubs.Resolve(ctx, c.Host())
	var nohub hub.ErrNoHub
	if errors.As(err, &nohub) {
		return wire.Errorf("amqp:not-found", "No IoT hub answers to '%s'. Connect to the hub's host name ({hub}.{dns suffix}) from its connection string.", c.Host())
	}
	if err != nil {
		return fmt.Errorf("hubamqp: resolve hub: %w", err)
	}
	c.SetValue(connKey{}, &connState{hub: hb.Name, x509: map[deviceKey]deviceauth.Identity{}, present: map[deviceKey]bool{}})
	return nil
}

// currentHub is the connection's hub as the directory knows it now
// (policies, settings and routes may have changed since the open).
func (h *Handler) currentHub(ctx context.Context, c *amqp.Conn) (hub.Hub, error) {
	st := state(c)
	if st == nil {
		return hub.Hub{}, errors.New("hubamqp: connection without a hub")
	}
	hb, ok, err := h.cfg.Hubs.Get(ctx, st.hub)
	if err != nil {
		return hub.Hub{}, fmt.Errorf("hubamqp: hub %s: %w", st.hub, err)
	}
	if !ok {
		return hub.Hub{}, wire.Errorf("amqp:not-found", "IoT hub %s no longer exists.", st.hub)
	}
	return hb, nil
}

// endpoint is what an address names.
type endpoint int

const (
	epC2DSend endpoint = iota + 1
	epFeedback
	epFileNotifications
	epTelemetry
	epDeviceBound
	epMethods
	epTwin
)

// route is a parsed link address.
type route struct {
	ep                 endpoint
	deviceID, moduleID string
}

// parseAddress reads a link address: "/messages/devicebound",
// "/devices/{id}/messages/events", … — with or without "amqps://{host}",
// fixed segments in any case, ids percent-decoded. clientSends is the
// client's role (a sender link's target, a receiver link's source).
func parseAddress(addr string, clientSends bool) (route, error) {
	a := strings.TrimSpace(addr)
	if _, rest, ok := strings.Cut(a, "://"); ok {
		_, a, _ = strings.Cut(rest, "/")
	}
	var segs []string
	for _, s := range strings.Split(strings.Trim(a, "/"), "/") {
		if un, err := url.PathUnescape(s); err == nil {
			s = un
		}
		segs = append(segs, s)
	}
	is := func(i int, want ...string) bool {
		if i >= len(segs) {
			return false
		}
		for _, w := range want {
			if strings.EqualFold(segs[i], w) {
				return true
			}
		}
		return false
	}
	wrongRole := func(what, do string) (route, error) {
		return route{}, wire.Errorf("amqp:not-allowed", "%s: %s at '%s'.", what, do, addr)
	}
	switch {
	case len(segs) == 2 && is(0, "messages") && is(1, "devicebound"):
		if !clientSends {
			return wrongRole("Cloud-to-device messages are sent here", "attach a sender")
		}
		return route{ep: epC2DSend}, nil
	case len(segs) == 3 && is(0, "messages") && is(1, "servicebound") && is(2, "feedback"):
		if clientSends {
			return wrongRole("Feedback is received here", "attach a receiver")
		}
		return route{ep: epFeedback}, nil
	case len(segs) == 3 && is(0, "messages") && is(1, "servicebound") && is(2, "filenotifications", "fileuploadnotifications"):
		if clientSends {
			return wrongRole("File notifications are received here", "attach a receiver")
		}
		return route{ep: epFileNotifications}, nil
	case len(segs) >= 3 && is(0, "devices") && segs[1] != "":
		r := route{deviceID: segs[1]}
		rest := segs[2:]
		if len(rest) >= 2 && is(2, "modules") && rest[1] != "" {
			r.moduleID = rest[1]
			rest = rest[2:]
		}
		at := func(i int, want string) bool { return i < len(rest) && strings.EqualFold(rest[i], want) }
		switch {
		case len(rest) == 2 && at(0, "messages") && at(1, "events"):
			switch {
			case clientSends:
				r.ep = epTelemetry
			case r.moduleID != "":
				r.ep = epDeviceBound // where the module SDK receives its messages
			default:
				return wrongRole("Devices send telemetry here", "attach a sender, and receive on /devices/{id}/messages/devicebound")
			}
			return r, nil
		case len(rest) == 2 && at(0, "messages") && at(1, "devicebound"):
			if clientSends {
				return wrongRole("Devices receive cloud-to-device messages here", "attach a receiver, and send telemetry to /devices/{id}/messages/events")
			}
			r.ep = epDeviceBound
			return r, nil
		case len(rest) == 2 && at(0, "methods") && at(1, "devicebound"):
			r.ep = epMethods
			return r, nil
		case len(rest) == 1 && at(0, "twin"):
			r.ep = epTwin
			return r, nil
		}
	case len(segs) >= 2 && is(0, "messages") && is(1, "events"):
		return route{}, wire.Errorf("amqp:not-found", "'%s' is the built-in endpoint: read it at the hub's Event Hubs-compatible endpoint (iothub-ns-{hub}.servicebus.{suffix}).", addr)
	}
	return route{}, wire.Errorf("amqp:not-found", "No IoT Hub endpoint at '%s'.", addr)
}

// Attach implements amqp.Handler.
func (h *Handler) Attach(ctx context.Context, c *amqp.Conn, a *wire.Attach) (amqp.Link, error) {
	clientSends := a.Role == wire.RoleSender
	addr := ""
	if clientSends && a.Target != nil {
		addr = a.Target.Address
	} else if !clientSends && a.Source != nil {
		addr = a.Source.Address
	}
	r, err := parseAddress(addr, clientSends)
	if err != nil {
		return nil, err
	}
	hb, err := h.currentHub(ctx, c)
	if err != nil {
		return nil, err
	}
	switch r.ep {
	case epC2DSend:
		claim, err := h.authorizeService(ctx, c, hb, serviceapi.C2DSend)
		if err != nil {
			return nil, err
		}
		return h.c2dSendLink(ctx, c, claim), nil
	case epFeedback:
		claim, err := h.authorizeService(ctx, c, hb, serviceapi.C2DFeedback)
		if err != nil {
			return nil, err
		}
		return h.feedbackLink(c, claim), nil
	case epFileNotifications:
		if h.cfg.Files == nil {
			return nil, wire.Errorf("amqp:not-implemented", "File upload is not enabled in this Outpost.")
		}
		claim, err := h.authorizeService(ctx, c, hb, serviceapi.FileNotifications)
		if err != nil {
			return nil, err
		}
		return h.fileNotificationLink(c, claim), nil
	}
	id, claim, err := h.authorizeDevice(ctx, c, hb, r.deviceID, r.moduleID)
	if err != nil {
		return nil, err
	}
	h.announce(c, id)
	switch {
	case r.ep == epTelemetry:
		return h.telemetryLink(ctx, c, id, claim), nil
	case r.ep == epTwin && clientSends:
		return h.twinRequestLink(ctx, c, id, claim), nil
	case r.ep == epTwin:
		return h.channelLink(c, h.channels.twins, id, claim), nil
	case r.ep == epMethods && clientSends:
		return h.methodResponseLink(id, claim), nil
	case r.ep == epMethods:
		return h.channelLink(c, h.channels.methods, id, claim), nil
	}
	return h.deviceBoundLink(c, id, claim), nil
}

// announce tells Presence a device uses this connection, once, and that
// it stopped when the connection ends.
func (h *Handler) announce(c *amqp.Conn, id deviceauth.Identity) {
	p := h.cfg.Presence
	st := state(c)
	if p == nil || st == nil {
		return
	}
	k := deviceKey{id.DeviceID, id.ModuleID}
	st.mu.Lock()
	first := len(st.present) == 0
	known := st.present[k]
	st.present[k] = true
	st.mu.Unlock()
	if known {
		return
	}
	p.DeviceConnected(c.Context(), id.Hub.Name, id.DeviceID, id.ModuleID)
	if !first {
		return
	}
	// One watcher per connection, ending with it.
	go func() {
		<-c.Context().Done()
		st.mu.Lock()
		keys := make([]deviceKey, 0, len(st.present))
		for k := range st.present {
			keys = append(keys, k)
		}
		st.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context()), 10*time.Second)
		defer cancel()
		for _, k := range keys {
			p.DeviceDisconnected(ctx, id.Hub.Name, k.deviceID, k.moduleID)
		}
	}()
}
