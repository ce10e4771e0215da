package servicebus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
)

// Access is what the handler needs of the access checker;
// *access.Checker implements it.
type Access interface {
	Authenticate(ctx context.Context, token string, service identity.Service) (access.Caller, error)
	Authorize(caller access.Caller, action string, isDataAction bool, scope string) error
	Admit(n access.Network, ip netip.Addr, caller *access.Caller) error
}

// Config holds the data plane's dependencies.
type Config struct {
	Resources store.Resources
	Bus       *bus.Bus
	Access    Access
	// DNSSuffix makes the namespace host {namespace}.servicebus.{DNSSuffix}.
	DNSSuffix string
	Log       *slog.Logger
	// PathStyle takes the namespace from the first path segment
	// (https://host:port/{namespace}/{entity}/messages) instead of the Host.
	PathStyle bool
	// CacheTTL bounds how long a namespace's configuration is reused when no
	// local change invalidated it (changes made on other nodes). Default 5s.
	CacheTTL time.Duration
	// MaxWait caps a receive's long poll (?timeout=). Default 60s.
	MaxWait time.Duration
	Now     func() time.Time
}

// Handler is the Service Bus REST data plane for {namespace}.servicebus.{suffix}.
// It also implements sbresource.Runtime and sbresource.Counter, so the ARM
// types keep the broker and the handler's cache in step.
type Handler struct {
	cfg    Config
	broker *Broker
	dir    *directory
	log    *slog.Logger
}

var (
	_ sbresource.Runtime = (*Handler)(nil)
	_ sbresource.Counter = (*Handler)(nil)
)

// New builds the handler. It starts nothing; the app runs Run.
func New(cfg Config) (*Handler, error) {
	if cfg.Resources == nil || cfg.Bus == nil || cfg.Access == nil {
		return nil, errors.New("servicebus: Resources, Bus and Access are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 5 * time.Second
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 60 * time.Second
	}
	return &Handler{cfg: cfg, broker: NewBroker(cfg.Bus, cfg.Log, cfg.Now),
		dir: newDirectory(cfg.Resources, cfg.CacheTTL, cfg.Now), log: cfg.Log}, nil
}

// Run forgets expired message locks until ctx ends.
func (h *Handler) Run(ctx context.Context) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.broker.sweepLocks()
		}
	}
}

// Serves reports whether namespace is a Service Bus namespace (the app
// routes the shared servicebus host between Event Hubs and Service Bus).
func (h *Handler) Serves(ctx context.Context, namespace string) (bool, error) {
	v, err := h.dir.get(ctx, namespace)
	return v != nil, err
}

// Runtime hooks (sbresource.Runtime), delegated to the broker.

func (h *Handler) EnsureNamespace(ctx context.Context, ns string) error {
	return h.broker.EnsureNamespace(ctx, ns)
}
func (h *Handler) RemoveNamespace(ctx context.Context, ns string) error {
	return h.broker.RemoveNamespace(ctx, ns)
}
func (h *Handler) EnsureEntity(ctx context.Context, e sbresource.Entity) error {
	return h.broker.EnsureEntity(ctx, e)
}
func (h *Handler) RemoveEntity(ctx context.Context, e sbresource.Entity) error {
	return h.broker.RemoveEntity(ctx, e)
}
func (h *Handler) Count(ctx context.Context, e sbresource.Entity) (int64, int64, error) {
	return h.broker.Count(ctx, e)
}

// Changed drops the namespace's cached configuration.
func (h *Handler) Changed(ns string) { h.dir.invalidate(ns) }

// request is a parsed data-plane request.
type request struct {
	r         *http.Request
	ns        *namespaceView
	host      string // {ns}.servicebus.{suffix}
	op        string // send, receive, settle
	entity    string // entity path: q, q/$DeadLetterQueue, t/subscriptions/s[/$DeadLetterQueue]
	queue     *queueView
	topic     *topicView
	sub       *subscriptionView
	dlq       bool
	lockToken string
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.serve(w, r); err != nil {
		h.writeError(w, r, err)
	}
}

// sbError is a refusal in Service Bus's REST error shape.
type sbError struct {
	status int
	detail string
	cause  error
}

func (e *sbError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.detail) }
func (e *sbError) Unwrap() error { return e.cause }

func fail(status int, format string, args ...any) *sbError {
	return &sbError{status: status, detail: fmt.Sprintf(format, args...)}
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var se *sbError
	if !errors.As(err, &se) {
		h.log.Error("servicebus request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		se = fail(http.StatusInternalServerError, "The server encountered an internal error; retry the request. If it keeps failing, see the Outpost log.")
	}
	tracker := r.Host
	if p := strings.Trim(r.URL.Path, "/"); p != "" {
		tracker += ":" + p
	}
	detail := fmt.Sprintf("%s TrackingId:%s_G0, SystemTracker:%s, Timestamp:%s", se.detail, uuid.NewString(), tracker,
		h.cfg.Now().UTC().Format("2006-01-02T15:04:05"))
	if se.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.Host+`"`)
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(se.status)
	var b strings.Builder
	b.WriteString("<Error><Code>")
	b.WriteString(strconv.Itoa(se.status))
	b.WriteString("</Code><Detail>")
	xmlEscape(&b, detail)
	b.WriteString("</Detail></Error>")
	_, _ = io.WriteString(w, b.String())
}

func xmlEscape(b *strings.Builder, s string) {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;") // element text: quotes stay readable
	b.WriteString(r.Replace(s))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) error {
	host := r.Host
	if hst, _, err := net.SplitHostPort(host); err == nil {
		host = hst
	}
	segs := splitPath(r.URL.EscapedPath())
	var nsName string
	if h.cfg.PathStyle {
		if len(segs) == 0 {
			return fail(http.StatusNotFound, "The request names no namespace: use https://host/{namespace}/{entity}/messages.")
		}
		nsName, segs = segs[0], segs[1:]
	} else {
		nsName, _, _ = strings.Cut(host, ".")
	}
	ns, err := h.dir.get(r.Context(), nsName)
	if err != nil {
		return err
	}
	if ns == nil {
		return fail(http.StatusNotFound, "The namespace '%s' does not exist. Create it with PUT .../providers/Microsoft.ServiceBus/namespaces/%s.", nsName, nsName)
	}
	req := &request{r: r, ns: ns, host: ns.name + ".servicebus." + h.cfg.DNSSuffix}
	if err := h.route(req, segs); err != nil {
		return err
	}
	if err := h.authorize(req); err != nil {
		return err
	}
	switch req.op {
	case "send":
		return h.send(w, req)
	case "receive":
		return h.receive(w, req)
	}
	return h.settle(w, req)
}

func splitPath(escaped string) []string {
	var out []string
	for _, s := range strings.Split(strings.Trim(escaped, "/"), "/") {
		if s == "" {
			continue
		}
		if un, err := url.PathUnescape(s); err == nil {
			s = un
		}
		out = append(out, s)
	}
	return out
}

// route resolves the operation and the entity from the path.
func (h *Handler) route(req *request, segs []string) error {
	r := req.r
	n := len(segs)
	var entity []string
	switch {
	case n >= 2 && eq(segs[n-1], "messages") && r.Method == http.MethodPost:
		req.op, entity = "send", segs[:n-1]
	case n >= 3 && eq(segs[n-2], "messages") && eq(segs[n-1], "head"):
		if r.Method != http.MethodDelete && r.Method != http.MethodPost {
			return fail(http.StatusMethodNotAllowed, "Use DELETE (receive and delete) or POST (peek-lock) on .../messages/head.")
		}
		req.op, entity = "receive", segs[:n-2]
	case n >= 4 && eq(segs[n-3], "messages"):
		if r.Method != http.MethodDelete && r.Method != http.MethodPut && r.Method != http.MethodPost {
			return fail(http.StatusMethodNotAllowed, "Use DELETE (complete), PUT (unlock) or POST (renew lock) on .../messages/{id}/{lockToken}.")
		}
		req.op, entity, req.lockToken = "settle", segs[:n-3], segs[n-1]
	default:
		return fail(http.StatusBadRequest, "The path '%s' is not a Service Bus operation. Send with POST /{queue|topic}/messages; receive with DELETE or POST /{queue}/messages/head or /{topic}/subscriptions/{subscription}/messages/head.", r.URL.Path)
	}
	if len(entity) > 0 && eq(entity[len(entity)-1], "$DeadLetterQueue") {
		req.dlq, entity = true, entity[:len(entity)-1]
	}
	switch len(entity) {
	case 1:
		name := strings.ToLower(entity[0])
		if q, ok := req.ns.queues[name]; ok {
			req.queue, req.entity = q, q.name
		} else if t, ok := req.ns.topics[name]; ok {
			if req.op != "send" {
				return fail(http.StatusBadRequest, "'%s' is a topic: receive from one of its subscriptions, /%s/subscriptions/{subscription}/messages/head.", t.name, t.name)
			}
			req.topic, req.entity = t, t.name
		} else {
			return h.notFound(req, entity[0])
		}
	case 3:
		if !eq(entity[1], "subscriptions") {
			return h.notFound(req, strings.Join(entity, "/"))
		}
		t, ok := req.ns.topics[strings.ToLower(entity[0])]
		if !ok {
			return h.notFound(req, entity[0])
		}
		s, ok := t.subs[strings.ToLower(entity[2])]
		if !ok {
			return h.notFound(req, strings.Join(entity, "/"))
		}
		if req.op == "send" {
			return fail(http.StatusBadRequest, "Messages are sent to the topic, not a subscription: POST /%s/messages.", t.name)
		}
		req.topic, req.sub, req.entity = t, s, t.name+"/subscriptions/"+s.name
	default:
		return h.notFound(req, strings.Join(entity, "/"))
	}
	if req.dlq {
		if req.op == "send" {
			return fail(http.StatusBadRequest, "Messages can't be sent to a dead-letter queue.")
		}
		req.entity += "/$DeadLetterQueue"
	}
	return nil
}

func eq(a, b string) bool { return strings.EqualFold(a, b) }

// notFound answers a missing entity as the service does for REST: 404
// with MessagingEntityNotFound's text (the REST docs list 410, but the
// service and the azure-sb SDKs report 404).
func (h *Handler) notFound(req *request, entity string) error {
	return fail(http.StatusNotFound, "The messaging entity 'sb://%s/%s' could not be found. Create it with PUT .../namespaces/%s/queues/{name} or .../topics/{name}.",
		req.host, entity, req.ns.name)
}

// target returns the (sub-)queue a receive or settlement works on.
func (req *request) target() target {
	var t target
	if req.queue != nil {
		t = queueTarget(req.ns.name, req.queue.name, req.queue.settings)
	} else {
		t = subscriptionTarget(req.ns.name, req.topic.name, req.sub.name, req.sub.settings)
	}
	if req.dlq {
		t = t.deadLetter()
	}
	return t
}

// scope is the ARM id RBAC is checked at.
func (req *request) scope() string {
	switch {
	case req.sub != nil:
		return req.sub.id
	case req.queue != nil:
		return req.queue.id
	}
	return req.topic.id
}

// entitySettings are the settings of the queue, subscription or (for a
// send) topic the request addresses.
func (req *request) entitySettings() sbresource.Settings {
	switch {
	case req.queue != nil:
		return req.queue.settings
	case req.sub != nil:
		return req.sub.settings
	}
	return req.topic.settings
}
