package engine

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics is a hub's recent routing history on this node, oldest bucket
// first; the last bucket is the current one, still filling. Each node of
// a multi-node installation keeps and reports its own.
type Metrics struct {
	// Bucket is the width of one bucket.
	Bucket  time.Duration
	Buckets []MetricsBucket
}

// MetricsBucket is what happened during one bucket.
type MetricsBucket struct {
	Start time.Time
	// Endpoints by name: messages delivered and failed, and the health
	// status at the bucket's end (now, for the current bucket).
	Endpoints map[string]EndpointMetrics
	// Routes by name: messages the route matched.
	Routes map[string]int64
}

// EndpointMetrics is one endpoint's count in one bucket.
type EndpointMetrics struct {
	Delivered int64  `json:"delivered"`
	Failed    int64  `json:"failed"`
	Status    string `json:"status"`
}

// routeCounter counts a route's matches since the process started. The
// router adds to it without a lock; the history takes differences at
// bucket boundaries.
type routeCounter struct {
	name    string
	matched atomic.Int64
}

// add counts a match (a plan compiled outside a hub runtime, as unit
// tests build, has no counters).
func (c *routeCounter) add() {
	if c != nil {
		c.matched.Add(1)
	}
}

// endpointCount is an endpoint's activity in the current bucket.
type endpointCount struct {
	delivered, failed int64
}

// history keeps a hub's last size buckets. Buckets are closed lazily, by
// whoever notices the clock passed a boundary (a router batch, a worker's
// send, a reader), so no goroutine ticks for it.
//
// Lock order: history.mu, then hubRuntime.mu, then healthTracker.mu (the
// status function closing a bucket takes them); healthTracker and router
// calls into the history hold none of those.
type history struct {
	width time.Duration
	size  int

	mu       sync.Mutex
	current  int64 // index of the current bucket: unix time / width
	closed   []MetricsBucket
	counters map[string]*routeCounter // lower-case route name
	base     map[string]int64         // each counter at the current bucket's start
	live     map[string]bool          // the routes of the current plan
	builtIn  atomic.Int64             // copies stored on the built-in endpoint
	builtIn0 int64
	counts   map[string]*endpointCount // lower-case endpoint name
}

func newHistory(width time.Duration, size int) *history {
	return &history{width: width, size: size, counters: map[string]*routeCounter{},
		base: map[string]int64{}, live: map[string]bool{}, counts: map[string]*endpointCount{}}
}

func (h *history) index(now time.Time) int64 { return now.UnixNano() / int64(h.width) }

// counter returns the route's counter, created on first use; a route that
// keeps its name across configuration changes keeps its counter.
func (h *history) counter(name string) *routeCounter {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := strings.ToLower(name)
	c := h.counters[key]
	if c == nil {
		c = &routeCounter{name: name}
		h.counters[key] = c
		h.base[key] = 0
	}
	return c
}

// bind points a new plan's routes at their counters. A route no longer
// configured keeps its counter (its past buckets still show it) but is
// left out of buckets it has no count in.
func (h *history) bind(p *Plan) {
	live := map[string]bool{}
	for _, list := range p.routes {
		for _, rt := range list {
			live[strings.ToLower(rt.name)] = true
		}
	}
	if p.fallback != nil {
		live[strings.ToLower(p.fallback.name)] = true
	}
	h.mu.Lock()
	h.live = live
	h.mu.Unlock()
	for src, list := range p.routes {
		for i := range list {
			p.routes[src][i].counter = h.counter(list[i].name)
		}
	}
	if p.fallback != nil {
		p.fallback.counter = h.counter(p.fallback.name)
	}
}

// endpoint adds a send's outcome to the current bucket.
func (h *history) endpoint(now time.Time, name string, delivered, failed int64, status func() map[string]endpointStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.advance(now, status)
	key := strings.ToLower(name)
	c := h.counts[key]
	if c == nil {
		c = &endpointCount{}
		h.counts[key] = c
	}
	c.delivered += delivered
	c.failed += failed
}

// endpointStatus is an endpoint's display name and current status.
type endpointStatus struct {
	name, status string
}

// tick closes the buckets the clock has passed.
func (h *history) tick(now time.Time, status func() map[string]endpointStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.advance(now, status)
}

// advance closes the current bucket when now is past it (and records the
// idle buckets in between, up to size). h.mu is held.
func (h *history) advance(now time.Time, status func() map[string]endpointStatus) {
	idx := h.index(now)
	if h.current == 0 {
		h.current = idx
		return
	}
	if idx <= h.current {
		return
	}
	statuses := status()
	h.closed = append(h.closed, h.bucketLocked(h.current, statuses))
	for key, c := range h.counters {
		h.base[key] = c.matched.Load()
	}
	h.builtIn0 = h.builtIn.Load()
	clear(h.counts)
	// Idle buckets: no traffic, the statuses unchanged.
	first := max(h.current+1, idx-int64(h.size))
	for i := first; i < idx; i++ {
		h.closed = append(h.closed, h.bucketLocked(i, statuses))
	}
	if extra := len(h.closed) - (h.size - 1); extra > 0 {
		h.closed = append(h.closed[:0], h.closed[extra:]...)
	}
	h.current = idx
}

// bucketLocked is the current bucket's counts, stamped as bucket idx.
func (h *history) bucketLocked(idx int64, statuses map[string]endpointStatus) MetricsBucket {
	b := MetricsBucket{Start: time.Unix(0, idx*int64(h.width)).UTC(),
		Endpoints: map[string]EndpointMetrics{}, Routes: map[string]int64{}}
	for key, c := range h.counters {
		if n := c.matched.Load() - h.base[key]; n != 0 || h.live[key] {
			b.Routes[c.name] = n
		}
	}
	for key, st := range statuses {
		m := EndpointMetrics{Status: st.status}
		if c := h.counts[key]; c != nil {
			m.Delivered, m.Failed = c.delivered, c.failed
		}
		b.Endpoints[st.name] = m
	}
	b.Endpoints[BuiltInEndpoint] = EndpointMetrics{Delivered: h.builtIn.Load() - h.builtIn0, Status: StatusHealthy}
	return b
}

// snapshot closes what the clock passed and returns the closed buckets
// plus the current one.
func (h *history) snapshot(now time.Time, status func() map[string]endpointStatus) Metrics {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.advance(now, status)
	out := Metrics{Bucket: h.width, Buckets: make([]MetricsBucket, 0, len(h.closed)+1)}
	for _, b := range h.closed {
		out.Buckets = append(out.Buckets, copyBucket(b))
	}
	out.Buckets = append(out.Buckets, h.bucketLocked(h.index(now), status()))
	return out
}

func copyBucket(b MetricsBucket) MetricsBucket {
	c := MetricsBucket{Start: b.Start, Endpoints: make(map[string]EndpointMetrics, len(b.Endpoints)), Routes: make(map[string]int64, len(b.Routes))}
	for k, v := range b.Endpoints {
		c.Endpoints[k] = v
	}
	for k, v := range b.Routes {
		c.Routes[k] = v
	}
	return c
}
