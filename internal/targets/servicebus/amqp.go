package servicebus

import (
	"context"
	"strings"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
)

// Service Bus over AMQP, on the same broker as the REST data plane (a
// message sent one way is received the other way):
//
//   - amqp.go: the connection (its namespace) and what an address names;
//   - amqp_auth.go: $cbs put-token (SAS, Entra ID), SASL PLAIN, and the
//     check a link or a $management operation passes;
//   - amqp_send.go: sender links (the client sends), stored before they
//     are accepted;
//   - amqp_receive.go: receiver links, peek-lock and receive-and-delete,
//     and the dispositions that settle;
//   - amqp_management.go: the {entity}/$management node;
//   - amqp_message.go: AMQP messages to and from the stored form;
//   - amqp_broker.go: the broker's settlements from a connection's reader,
//     dead-letter and abandon with properties, peek;
//   - schedule.go, defer.go: scheduled and deferred messages in the
//     broker (only AMQP reaches them so far).

// AMQP returns the handler the app's AMQP router gives connections to
// {namespace}.servicebus.{suffix} when the namespace is a Service Bus
// namespace. It also takes SASL PLAIN (amqp.PlainAuthenticator).
func (h *Handler) AMQP() amqp.Handler { return &amqpHandler{h: h} }

type amqpHandler struct{ h *Handler }

var (
	_ amqp.Handler            = (*amqpHandler)(nil)
	_ amqp.PlainAuthenticator = (*amqpHandler)(nil)
)

// Values kept on a connection.
type (
	// namespaceKey holds the namespace's name (from the host in open).
	namespaceKey struct{}
	// plainKey holds SASL PLAIN credentials checked once the namespace is
	// known (*plainCredentials), then the grant they prove (*grant).
	plainKey struct{}
)

// namespaceOf is the namespace a host names: its first label.
func namespaceOf(host string) string {
	label, _, _ := strings.Cut(host, ".")
	return label
}

// Open binds the connection to the namespace its host names.
func (a *amqpHandler) Open(ctx context.Context, c *amqp.Conn) error {
	name := namespaceOf(c.Host())
	view, err := a.h.dir.get(ctx, name)
	if err != nil {
		return err
	}
	if view == nil {
		return wire.Errorf("amqp:not-found", "No Service Bus namespace is named '%s' (host '%s').", name, c.Host())
	}
	c.SetValue(namespaceKey{}, view.name)
	return a.checkDeferredPlain(c, view)
}

// namespace returns the connection's namespace as configured now.
func (a *amqpHandler) namespace(ctx context.Context, c *amqp.Conn) (*namespaceView, error) {
	name, _ := c.Value(namespaceKey{}).(string)
	if name == "" {
		name = namespaceOf(c.Host())
	}
	view, err := a.h.dir.get(ctx, name)
	if err != nil {
		return nil, err
	}
	if view == nil {
		return nil, wire.Errorf("amqp:not-found", "The Service Bus namespace '%s' no longer exists.", name)
	}
	return view, nil
}

// amqpEntity is what an address names: a queue, a topic, a subscription,
// or the dead-letter queue of a queue or subscription.
type amqpEntity struct {
	ns    *namespaceView
	host  string // {namespace}.servicebus.{suffix}
	queue *queueView
	topic *topicView
	sub   *subscriptionView
	dlq   bool
	// transfer is the transfer dead-letter queue, always empty here:
	// Outpost never forwards.
	transfer bool
}

// path is the entity path as Service Bus spells it: "q", "t",
// "t/Subscriptions/s", with "/$DeadLetterQueue" for a dead-letter queue.
func (e amqpEntity) path() string {
	p := e.basePath()
	if e.transfer {
		p += "/$Transfer"
	}
	if e.dlq {
		p += "/$DeadLetterQueue"
	}
	return p
}

// basePath is the queue, topic or subscription without a sub-queue.
func (e amqpEntity) basePath() string {
	switch {
	case e.sub != nil:
		return e.topic.name + "/Subscriptions/" + e.sub.name
	case e.queue != nil:
		return e.queue.name
	}
	return e.topic.name
}

// resource is the entity's URI in Service Bus's messages.
func (e amqpEntity) resource() string { return "sb://" + e.host + "/" + e.path() }

func (e amqpEntity) target() target {
	var t target
	if e.queue != nil {
		t = queueTarget(e.ns.name, e.queue.name, e.queue.settings)
	} else {
		t = subscriptionTarget(e.ns.name, e.topic.name, e.sub.name, e.sub.settings)
	}
	if e.dlq {
		t = t.deadLetter()
	}
	return t
}

// scope is the ARM id RBAC is checked at.
func (e amqpEntity) scope() string {
	switch {
	case e.sub != nil:
		return e.sub.id
	case e.queue != nil:
		return e.queue.id
	}
	return e.topic.id
}

func (e amqpEntity) settings() sbresource.Settings {
	switch {
	case e.queue != nil:
		return e.queue.settings
	case e.sub != nil:
		return e.sub.settings
	}
	return e.topic.settings
}

// receivable reports whether messages are received from the entity (a
// queue, a subscription, or a sub-queue of either).
func (e amqpEntity) receivable() bool { return e.queue != nil || e.sub != nil }

// addressSegments splits a link address ("q", "t/Subscriptions/s",
// "amqps://ns.host/q/$management") into its path segments.
func addressSegments(addr string) []string {
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
		if _, rest, ok := strings.Cut(addr, "/"); ok {
			addr = rest
		} else {
			addr = ""
		}
	}
	var out []string
	for _, s := range strings.Split(addr, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// resolve finds the entity segs name. Names compare case-insensitively,
// as Service Bus compares them.
func (a *amqpHandler) resolve(view *namespaceView, segs []string) (amqpEntity, error) {
	e := amqpEntity{ns: view, host: view.name + ".servicebus." + a.h.cfg.DNSSuffix}
	full := strings.Join(segs, "/")
	n := len(segs)
	if n > 0 && eq(segs[n-1], "$DeadLetterQueue") {
		e.dlq, n = true, n-1
		if n > 0 && eq(segs[n-1], "$Transfer") {
			e.transfer, n = true, n-1
		}
	}
	notFound := func() error {
		return wire.Errorf("amqp:not-found", "The messaging entity 'sb://%s/%s' could not be found. Create it with PUT .../namespaces/%s/queues/{name} or .../topics/{name}.",
			e.host, full, view.name)
	}
	switch {
	case n == 1:
		if q, ok := view.queues[strings.ToLower(segs[0])]; ok {
			e.queue = q
		} else if t, ok := view.topics[strings.ToLower(segs[0])]; ok {
			e.topic = t
		} else {
			return e, notFound()
		}
	case n == 3 && eq(segs[1], "Subscriptions"):
		t, ok := view.topics[strings.ToLower(segs[0])]
		if !ok {
			return e, notFound()
		}
		s, ok := t.subs[strings.ToLower(segs[2])]
		if !ok {
			return e, notFound()
		}
		e.topic, e.sub = t, s
	default:
		return e, notFound()
	}
	if (e.dlq || e.transfer) && !e.receivable() {
		return e, notFound()
	}
	return e, nil
}

// Attach resolves a link: a sender to a queue or topic, a receiver on a
// queue, a subscription or a dead-letter queue, or the request and reply
// links of {entity}/$management.
func (a *amqpHandler) Attach(ctx context.Context, c *amqp.Conn, at *wire.Attach) (amqp.Link, error) {
	clientSends := at.Role == wire.RoleSender
	var addr string
	if clientSends && at.Target != nil {
		addr = at.Target.Address
	} else if !clientSends && at.Source != nil {
		addr = at.Source.Address
	}
	segs := addressSegments(addr)
	if len(segs) == 0 {
		return nil, wire.Errorf("amqp:not-found", "The link has no address: attach to a queue, a topic, {topic}/Subscriptions/{subscription} or {entity}/$management.")
	}
	view, err := a.namespace(ctx, c)
	if err != nil {
		return nil, err
	}
	if eq(segs[len(segs)-1], "$management") {
		if !clientSends {
			return amqp.ReplyLink(), nil
		}
		return a.managementLink(ctx, c, view, segs[:len(segs)-1])
	}
	e, err := a.resolve(view, segs)
	if err != nil {
		return nil, err
	}
	if clientSends {
		return a.senderLink(ctx, c, e)
	}
	return a.receiverLink(ctx, c, at, e)
}
