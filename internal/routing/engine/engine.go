package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/store"
)

// Engine routes every hub's messages to its custom endpoints. New starts
// nothing; Run owns every goroutine.
//
// Lock order: Engine.mu, then hubRuntime.mu; neither is held across a
// network or bus call except where noted.
type Engine struct {
	cfg    Config
	tokens *tokenCache

	mu      sync.Mutex
	hubs    map[string]*hubRuntime // lower-case hub name
	pending map[string]bool        // hub → true reload, false remove
	wake    chan struct{}

	messaging *messagingSender
	storage   *storageSender
}

// New checks the configuration and builds the engine.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	cfg = cfg.withDefaults()
	e := &Engine{
		cfg:     cfg,
		tokens:  newTokenCache(cfg.Tokens, cfg.Now, cfg.TokenRefreshMargin),
		hubs:    map[string]*hubRuntime{},
		pending: map[string]bool{},
		wake:    make(chan struct{}, 1),
	}
	e.messaging = &messagingSender{egress: cfg.Egress, tokens: e.tokens, now: cfg.Now}
	e.storage = newStorageSender(cfg.Egress, e.tokens, cfg.Now)
	return e, nil
}

// Reload makes the engine re-read a hub's routing configuration (after it
// was created or changed). It does not block; Run applies it.
func (e *Engine) Reload(hub string) { e.request(hub, true) }

// RemoveHub stops routing a deleted hub and drops its queues. It does not
// block; Run applies it.
func (e *Engine) RemoveHub(hub string) { e.request(hub, false) }

func (e *Engine) request(hub string, reload bool) {
	e.mu.Lock()
	e.pending[strings.ToLower(hub)] = reload
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run routes until ctx ends: it starts every stored hub, then applies
// Reload and RemoveHub requests. It returns nil on cancellation, after
// every goroutine it started has stopped.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		e.mu.Lock()
		hubs := e.hubs
		e.hubs = map[string]*hubRuntime{}
		e.mu.Unlock()
		for _, h := range hubs {
			h.stop()
		}
		wg.Wait()
	}()
	if err := e.loadAll(ctx, &wg); err != nil && ctx.Err() == nil {
		e.cfg.Log.Warn("routing: listing hubs failed; hubs start on their next change", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		}
		e.mu.Lock()
		work := e.pending
		e.pending = map[string]bool{}
		e.mu.Unlock()
		for hub, reload := range work {
			var err error
			if reload {
				err = e.reload(ctx, &wg, hub)
			} else {
				err = e.remove(ctx, hub)
			}
			if err != nil && ctx.Err() == nil {
				e.cfg.Log.Error("routing: applying hub change failed", "hub", hub, "err", err)
			}
		}
	}
}

func (e *Engine) loadAll(ctx context.Context, wg *sync.WaitGroup) error {
	list, err := e.cfg.Resources.List(ctx, store.ResourceFilter{Type: HubType})
	if err != nil {
		return fmt.Errorf("engine: list hubs: %w", err)
	}
	for _, r := range list {
		if err := e.apply(ctx, wg, r); err != nil {
			e.cfg.Log.Error("routing: starting hub failed", "hub", r.Name, "err", err)
		}
	}
	return nil
}

// hubResource finds a hub's stored document (hub names are unique across
// the installation).
func (e *Engine) hubResource(ctx context.Context, hub string) (*store.Resource, error) {
	list, err := e.cfg.Resources.List(ctx, store.ResourceFilter{Type: HubType})
	if err != nil {
		return nil, fmt.Errorf("engine: list hubs: %w", err)
	}
	for i := range list {
		if strings.EqualFold(list[i].Name, hub) {
			return &list[i], nil
		}
	}
	return nil, nil
}

func (e *Engine) reload(ctx context.Context, wg *sync.WaitGroup, hub string) error {
	res, err := e.hubResource(ctx, hub)
	if err != nil {
		return err
	}
	if res == nil {
		return e.remove(ctx, hub)
	}
	return e.apply(ctx, wg, *res)
}

// apply compiles a hub's plan and brings its router and workers in line.
func (e *Engine) apply(ctx context.Context, wg *sync.WaitGroup, res store.Resource) error {
	plan, err := compilePlan(res, e.cfg.Compile)
	if err != nil {
		return err
	}
	for _, p := range plan.Problems {
		e.cfg.Log.Warn("routing: configuration problem", "hub", plan.Hub, "problem", p)
	}
	// Every hub has a router, even one without custom endpoints: routes to
	// the built-in endpoint decide what reaches it, and messages stored for
	// the router before the routes were removed still need routing. While
	// a hub's device messages go straight to the built-in endpoint
	// (telemetry.PathBuiltIn) its router only waits.
	if len(plan.Endpoints) > 0 {
		if err := e.ensureQueue(ctx, plan); err != nil {
			return err
		}
	}
	name := strings.ToLower(plan.Hub)
	e.mu.Lock()
	h := e.hubs[name]
	if h == nil {
		h = newHubRuntime(e, name)
		e.hubs[name] = h
	}
	e.mu.Unlock()
	h.apply(ctx, wg, plan)
	return nil
}

func (e *Engine) remove(ctx context.Context, hub string) error {
	e.mu.Lock()
	h := e.hubs[hub]
	delete(e.hubs, hub)
	e.mu.Unlock()
	if h != nil {
		h.stop()
		h.wait()
		if p := h.plan.Load(); p != nil {
			e.tokens.forget(p.ResourceID)
		}
	}
	js := e.cfg.Bus.JetStream()
	var errs []error
	if err := js.DeleteStream(ctx, e.cfg.Bus.Stream(queueStream(hub))); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		errs = append(errs, fmt.Errorf("engine: delete routing queue of %s: %w", hub, err))
	}
	if err := e.deleteRouters(ctx, hub); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Health reports a hub's custom endpoints, sorted by name, plus the
// built-in endpoint (always healthy: it is the hub's own stream). nil when
// the engine does not know the hub.
func (e *Engine) Health(hub string) []EndpointHealth {
	e.mu.Lock()
	h := e.hubs[strings.ToLower(hub)]
	e.mu.Unlock()
	if h == nil {
		return nil
	}
	out := h.health()
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return append(out, EndpointHealth{EndpointID: BuiltInEndpoint, Name: BuiltInEndpoint, Status: StatusHealthy})
}

// Hubs lists the hubs the engine routes on this node (lower-case names).
func (e *Engine) Hubs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.hubs))
	for name := range e.hubs {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Metrics returns a hub's routing history on this node (false for a hub
// the engine does not know).
func (e *Engine) Metrics(hub string) (Metrics, bool) {
	e.mu.Lock()
	h := e.hubs[strings.ToLower(hub)]
	e.mu.Unlock()
	if h == nil {
		return Metrics{}, false
	}
	return h.hist.snapshot(e.cfg.Now(), h.statuses), true
}

// Stats counts what a hub's router decided, since this process started.
type Stats struct {
	// Messages read from the hub's stream.
	Messages int64
	// Routed: copies appended to custom endpoint queues.
	Routed int64
	// Fallback: device messages that matched no route and took the
	// fallback route.
	Fallback int64
	// BuiltIn: copies stored on the built-in endpoint, by a route or the
	// fallback route.
	BuiltIn int64
	// Unrouted: messages that matched nothing and had no fallback.
	Unrouted int64
}

// Stats returns a hub's routing counters (zero for an unknown hub).
func (e *Engine) Stats(hub string) Stats {
	e.mu.Lock()
	h := e.hubs[strings.ToLower(hub)]
	e.mu.Unlock()
	if h == nil {
		return Stats{}
	}
	return h.stats.snapshot()
}

// TokenRequests is how many tokens the engine asked the token source for,
// for one identity of a hub (userAssigned "" = system-assigned) and
// audience.
func (e *Engine) TokenRequests(hubResourceID, userAssigned, audience string) int64 {
	return e.tokens.count(hubResourceID, userAssigned, audience)
}

// TotalTokenRequests is how many tokens the engine asked for overall.
func (e *Engine) TotalTokenRequests() int64 { return e.tokens.total() }

// TokenRequestCounts is TokenRequests for every (identity, audience) the
// engine asked a token for, for /metrics.
func (e *Engine) TokenRequestCounts() []TokenRequestCount { return e.tokens.counts() }

// backoff is the wait before retry attempt n (1-based): base doubling, capped.
func backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
