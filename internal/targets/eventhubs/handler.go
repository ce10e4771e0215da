package eventhubs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
)

// Config holds the data plane's dependencies.
type Config struct {
	// Resources reads what ehresource stored; store.Resources implements it.
	Resources ehresource.Reader
	Streams   *Streams
	// Access checks bearer tokens, RBAC and network rules
	// (*access.Checker). Nil refuses bearer tokens and still applies
	// network rules to SAS requests.
	Access Access
	// DNSSuffix: namespaces are served at {namespace}.servicebus.{DNSSuffix}.
	DNSSuffix string
	// PathStyle takes the namespace from the first path segment
	// (https://host:port/{namespace}/{eventhub}/messages) instead of the
	// Host header, for a port of its own without DNS names.
	PathStyle bool
	// CacheTTL bounds how long a namespace snapshot (keys, rules, event
	// hubs) is reused when no invalidation reached this node (default 2 s).
	CacheTTL time.Duration
	Log      *slog.Logger
	Now      func() time.Time
}

// Handler is the Event Hubs data plane: REST send over HTTP, and Send and
// Read as Go calls. It is safe for concurrent use and starts no goroutines.
type Handler struct {
	cfg Config
	dir *directory
	// roundRobin spreads events sent without a partition key.
	roundRobin atomic.Uint64
}

// New builds the handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Resources == nil || cfg.Streams == nil {
		return nil, errors.New("eventhubs: Resources and Streams are required")
	}
	if cfg.DNSSuffix == "" && !cfg.PathStyle {
		return nil, errors.New("eventhubs: DNSSuffix is required unless PathStyle is set")
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg, dir: newDirectory(cfg.Resources, cfg.CacheTTL, cfg.Now)}, nil
}

func (h *Handler) now() time.Time { return h.cfg.Now() }

// Serves reports whether namespace is an Event Hubs namespace, so the app
// can route the shared {namespace}.servicebus.{suffix} host to Event Hubs or
// Service Bus.
func (h *Handler) Serves(ctx context.Context, namespace string) (bool, error) {
	v, err := h.dir.get(ctx, namespace)
	return v != nil, err
}

// Invalidate drops the cached snapshot of a namespace; wire it to
// ehresource.Config.Changed.
func (h *Handler) Invalidate(namespace string) { h.dir.invalidate(namespace) }

// NamespaceFromHost returns the namespace of a host name
// ({namespace}.servicebus.{suffix}, any port), "" when the host is not one.
func NamespaceFromHost(host, dnsSuffix string) string {
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	ns, ok := strings.CutSuffix(host, ".servicebus."+strings.ToLower(dnsSuffix))
	if !ok || ns == "" || strings.Contains(ns, ".") {
		return ""
	}
	return ns
}

// route is a parsed REST send path.
type route struct {
	namespace string
	entity    string
	partition string // set for /partitions/{id}/messages
	publisher string // set for /publishers/{name}/messages
}

func (h *Handler) parse(r *http.Request) (route, error) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var rt route
	if h.cfg.PathStyle {
		if len(segs) < 2 {
			return route{}, errorf(http.StatusNotFound, "No namespace in the path: use /{namespace}/{eventhub}/messages.")
		}
		rt.namespace, segs = segs[0], segs[1:]
	} else {
		rt.namespace = NamespaceFromHost(r.Host, h.cfg.DNSSuffix)
		if rt.namespace == "" {
			return route{}, errorf(http.StatusNotFound, "The host '%s' is not an Event Hubs namespace host ({namespace}.servicebus.%s).", r.Host, h.cfg.DNSSuffix)
		}
	}
	switch {
	case len(segs) == 2 && strings.EqualFold(segs[1], "messages"):
		rt.entity = segs[0]
	case len(segs) == 4 && strings.EqualFold(segs[1], "partitions") && strings.EqualFold(segs[3], "messages"):
		rt.entity, rt.partition = segs[0], segs[2]
	case len(segs) == 4 && strings.EqualFold(segs[1], "publishers") && strings.EqualFold(segs[3], "messages"):
		rt.entity, rt.publisher = segs[0], segs[2]
	default:
		return route{}, errorf(http.StatusNotFound,
			"The path '%s' is not an Event Hubs REST operation. Send events with POST /{eventhub}/messages, /{eventhub}/partitions/{id}/messages or /{eventhub}/publishers/{name}/messages.", r.URL.Path)
	}
	if rt.entity == "" || (rt.partition == "" && len(segs) == 4 && rt.publisher == "") {
		return route{}, errorf(http.StatusBadRequest, "The path '%s' has an empty segment.", r.URL.Path)
	}
	return rt, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tracker := r.Host
	err := h.serve(w, r, &tracker)
	if err == nil {
		return
	}
	if !isRefusal(err) {
		h.cfg.Log.Error("event hubs request failed", "method", r.Method, "path", r.URL.Path, "host", r.Host, "err", err)
	}
	writeError(w, err, tracker, h.now())
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, tracker *string) error {
	rt, err := h.parse(r)
	if err != nil {
		return err
	}
	*tracker = strings.ToLower(rt.namespace) + ".servicebus." + h.cfg.DNSSuffix + ":" + rt.entity
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return errorf(http.StatusMethodNotAllowed, "The method '%s' is not supported on '%s'; send events with POST.", r.Method, r.URL.Path)
	}
	ctx := r.Context()
	if t := r.URL.Query().Get("timeout"); t != "" {
		secs, err := strconv.Atoi(t)
		if err != nil || secs <= 0 {
			return errorf(http.StatusBadRequest, "The timeout '%s' is not a positive number of seconds.", t)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(secs)*time.Second)
		defer cancel()
	}
	ns, err := h.dir.get(ctx, rt.namespace)
	if err != nil {
		return fmt.Errorf("eventhubs: load namespace %s: %w", rt.namespace, err)
	}
	if ns == nil {
		return errorf(http.StatusNotFound, "The namespace '%s' does not exist. Create it with PUT .../providers/Microsoft.EventHub/namespaces/%s.", rt.namespace, rt.namespace)
	}
	eh, _ := ns.EventHub(rt.entity)
	host := ehresource.Host(ns.Name, h.cfg.DNSSuffix)
	t := target{ns: ns, eh: eh, entity: rt.entity, host: host, resource: "sb://" + host + "/" + rt.entity}
	if eh != nil {
		t.entity = eh.Name
		t.resource = "sb://" + host + "/" + eh.Name
	}
	// Credentials first, as the service does: a caller who may not send
	// learns nothing about which event hubs exist.
	if err := h.authorize(ctx, r, t); err != nil {
		return err
	}
	if eh == nil {
		return errorf(http.StatusNotFound,
			"The messaging entity '%s' could not be found. Create the event hub with PUT .../namespaces/%s/eventhubs/%s.", t.resource, ns.Name, rt.entity)
	}
	events, err := h.readEvents(r, ns.MaxEventBytes())
	if err != nil {
		return err
	}
	req := SendRequest{Events: events, PartitionID: rt.partition, Publisher: rt.publisher}
	if err := h.send(ctx, ns, eh, t.resource, req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}
