package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/hub/builtin"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehamqp"
)

// amqpPlane is the AMQP 1.0 endpoint: TLS on --amqp-listen (5671) and
// WebSocket on the main listener, one server for every AMQP client.
type amqpPlane struct {
	srv    *amqp.Server
	ln     net.Listener
	router *amqpRouter
}

// amqpRouter gives a connection to the service its host names, as the
// HTTPS host router does: {namespace}.servicebus.{suffix} to Event Hubs or
// Service Bus (whichever holds the namespace), iothub-ns-{hub}.servicebus.
// {suffix} to the hub's built-in Event Hubs-compatible endpoint, and any
// other name (a hub's {hub}.{suffix}, an IP address) to the IoT hub.
type amqpRouter struct {
	suffix string
	// servesEventHubs reports whether a namespace is an Event Hubs one.
	servesEventHubs func(ctx context.Context, namespace string) (bool, error)
	eventHubs       amqp.Handler
	serviceBus      amqp.Handler
	builtIn         amqp.Handler
	ioTHub          amqp.Handler
}

type routeKey struct{}

// BuiltInEndpointPrefix starts the host name of a hub's built-in
// endpoint: iothub-ns-{hub}.servicebus.{suffix} (hubresource publishes it).
const builtInEndpointPrefix = "iothub-ns-"

func (r *amqpRouter) pick(ctx context.Context, host string) (amqp.Handler, error) {
	ns := eventhubs.NamespaceFromHost(host, r.suffix)
	switch {
	case ns != "" && strings.HasPrefix(ns, builtInEndpointPrefix) && r.builtIn != nil:
		return r.builtIn, nil
	case ns != "":
		if r.eventHubs != nil {
			serves, err := r.servesEventHubs(ctx, ns)
			if err != nil {
				return nil, err
			}
			if serves {
				return r.eventHubs, nil
			}
		}
		if r.serviceBus != nil {
			return r.serviceBus, nil
		}
		return nil, wire.Errorf("amqp:not-found", "No Event Hubs or Service Bus namespace is named '%s'.", ns)
	}
	if r.ioTHub != nil {
		return r.ioTHub, nil
	}
	return nil, wire.Errorf("amqp:not-found", "Nothing is served over AMQP at '%s'.", host)
}

func (r *amqpRouter) Open(ctx context.Context, c *amqp.Conn) error {
	h, err := r.pick(ctx, c.Host())
	if err != nil {
		return err
	}
	c.SetValue(routeKey{}, h)
	return h.Open(ctx, c)
}

func (r *amqpRouter) handler(c *amqp.Conn) (amqp.Handler, error) {
	h, ok := c.Value(routeKey{}).(amqp.Handler)
	if !ok {
		return nil, errors.New("app: AMQP connection without a service")
	}
	return h, nil
}

func (r *amqpRouter) PutToken(ctx context.Context, c *amqp.Conn, t amqp.TokenRequest) (amqp.Claim, error) {
	h, err := r.handler(c)
	if err != nil {
		return amqp.Claim{}, err
	}
	return h.PutToken(ctx, c, t)
}

func (r *amqpRouter) Attach(ctx context.Context, c *amqp.Conn, a *wire.Attach) (amqp.Link, error) {
	h, err := r.handler(c)
	if err != nil {
		return nil, err
	}
	return h.Attach(ctx, c, a)
}

// AuthenticatePlain passes SASL PLAIN to the service when it takes it.
func (r *amqpRouter) AuthenticatePlain(ctx context.Context, c *amqp.Conn, user, password string) ([]amqp.Claim, error) {
	// SASL runs before open: the host is the SASL hostname or TLS name.
	host := c.Host()
	if host == "" {
		return nil, errors.New("app: SASL PLAIN without a host name (set the SASL hostname or use TLS with SNI)")
	}
	h, err := r.pick(ctx, host)
	if err != nil {
		return nil, err
	}
	pa, ok := h.(amqp.PlainAuthenticator)
	if !ok {
		return nil, fmt.Errorf("app: SASL PLAIN is not accepted by this service; use ANONYMOUS and $cbs")
	}
	return pa.AuthenticatePlain(ctx, c, user, password)
}

func (a *App) buildAMQP() error {
	a.amqp.router = &amqpRouter{
		suffix:          a.cfg.DNSSuffix,
		servesEventHubs: a.targets.eventHubs.Serves,
		eventHubs:       a.targets.eventHubs.AMQP(),
		serviceBus:      a.targets.serviceBus.AMQP(),
		builtIn: ehamqp.New(builtin.New(builtin.Config{
			Hubs: a.hub.hubs, Telemetry: a.hub.telemetry, Access: a.targets.access, DNSSuffix: a.cfg.DNSSuffix,
			ConsumerGroupExists: func(ctx context.Context, hubID, name string) (bool, error) {
				_, err := a.store.Resources().Get(ctx, hubID+"/eventHubEndpoints/events/ConsumerGroups/"+name)
				if errors.Is(err, store.ErrNotFound) {
					return false, nil
				}
				return err == nil, err
			},
		}), a.log.With("component", "builtin-endpoint")),
	}
	ioTHub, err := a.buildHubAMQP()
	if err != nil {
		return err
	}
	a.amqp.router.ioTHub = ioTHub
	a.amqp.srv = amqp.NewServer(amqp.Config{
		Handler: a.amqp.router, Logger: a.log.With("component", "amqp"), ContainerID: "outpost",
	})
	addr := a.cfg.AMQPAddress()
	if addr == "" {
		return nil
	}
	tlsCfg := a.ca.ServerTLSConfig()
	// X.509 devices present a client certificate; others don't.
	tlsCfg.ClientAuth = tls.RequestClientCert
	tlsCfg.NextProtos = nil
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("app: amqp listen %s: %w", addr, err)
	}
	a.amqp.ln = tls.NewListener(ln, tlsCfg)
	return nil
}

// serveAMQP runs the AMQP listener until ctx ends, then closes every
// connection with amqp:connection:forced (clients reconnect elsewhere).
func (a *App) serveAMQP(ctx context.Context) error {
	if a.amqp.ln == nil {
		<-ctx.Done()
		a.amqp.srv.Shutdown()
		return nil
	}
	err := a.amqp.srv.Serve(ctx, a.amqp.ln)
	a.amqp.srv.Shutdown()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("app: amqp: %w", err)
	}
	return nil
}

// AMQPAddr is the bound AMQP over TLS address (nil when off).
func (a *App) AMQPAddr() net.Addr {
	if a.amqp.ln == nil {
		return nil
	}
	return a.amqp.ln.Addr()
}

// iotHubWebSocket serves /$iothub/websocket: AMQP when the client asks
// for an AMQP subprotocol, else MQTT.
func (a *App) iotHubWebSocket(mqttWS http.Handler) http.Handler {
	amqpWS := a.amqp.srv.WebSocketHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if amqp.IsWebSocketRequest(r) {
			amqpWS.ServeHTTP(w, r)
			return
		}
		mqttWS.ServeHTTP(w, r)
	})
}
