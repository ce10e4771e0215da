package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

// hdrPartition carries a routed message's partition on the queue (the
// queue's subject names the endpoint, not the partition).
const hdrPartition = "routing-partition"

func hubStream(hub string) string { return telemetry.StreamName(hub) }

// queueStream is a hub's routing queue: one subject per custom endpoint
// and partition, so each partition of an endpoint is delivered in order by
// its own worker while the partitions proceed in parallel.
func queueStream(hub string) string { return "routing-" + strings.ToLower(hub) }

func queueSubject(hub, endpoint string, partition int) string {
	return "routing." + strings.ToLower(hub) + "." + queueToken(endpoint) + "." + strconv.Itoa(partition)
}

// ensureQueue creates or updates a hub's routing queue. Work-queue
// retention frees a message once its endpoint's worker acknowledged it
// (each endpoint has its own subject and consumer); MaxAge is the hub's
// retention, the longest a message is kept for an endpoint that fails.
func (e *Engine) ensureQueue(ctx context.Context, p *Plan) error {
	_, err := e.cfg.Bus.EnsureStream(ctx, jetstream.StreamConfig{
		Name:       queueStream(p.Hub),
		Subjects:   []string{"routing." + strings.ToLower(p.Hub) + ".*.*"},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		MaxAge:     p.Retention,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("engine: routing queue of %s: %w", p.Hub, err)
	}
	return nil
}

// hubStats are a hub's router counters.
type hubStats struct {
	messages, routed, fallback, builtIn, unrouted atomic.Int64
}

func (s *hubStats) snapshot() Stats {
	return Stats{Messages: s.messages.Load(), Routed: s.routed.Load(), Fallback: s.fallback.Load(),
		BuiltIn: s.builtIn.Load(), Unrouted: s.unrouted.Load()}
}

// hubRuntime is one hub's router and endpoint workers.
type hubRuntime struct {
	e    *Engine
	name string // lower case
	plan atomic.Pointer[Plan]

	stats hubStats
	hist  *history

	mu           sync.Mutex
	trackers     map[string]*healthTracker // lower-case endpoint name
	workers      map[string]*workerHandle
	routerCancel context.CancelFunc
	routerDone   chan struct{}
}

type workerHandle struct {
	fingerprint string
	cancel      context.CancelFunc
	done        chan struct{}
}

func newHubRuntime(e *Engine, name string) *hubRuntime {
	return &hubRuntime{e: e, name: name, trackers: map[string]*healthTracker{}, workers: map[string]*workerHandle{},
		hist: newHistory(e.cfg.MetricsBucket, e.cfg.MetricsBuckets)}
}

// statuses are the custom endpoints' names and health, by lower-case name,
// for the history's buckets.
func (h *hubRuntime) statuses() map[string]endpointStatus {
	h.mu.Lock()
	trackers := make([]*healthTracker, 0, len(h.trackers))
	for _, t := range h.trackers {
		trackers = append(trackers, t)
	}
	h.mu.Unlock()
	out := make(map[string]endpointStatus, len(trackers))
	for _, t := range trackers {
		s := t.snapshot()
		out[strings.ToLower(s.Name)] = endpointStatus{name: s.Name, status: s.Status}
	}
	return out
}

// recordSend adds an endpoint's send outcome to the history.
func (h *hubRuntime) recordSend(now time.Time, endpoint string, delivered, failed int64) {
	h.hist.endpoint(now, endpoint, delivered, failed, h.statuses)
}

// apply installs a new plan: the router picks it up at its next batch;
// workers of changed endpoints restart (their unacknowledged messages go
// back to the queue first, so nothing is lost or reordered), workers of
// removed endpoints stop and their queues are purged.
func (h *hubRuntime) apply(ctx context.Context, wg *sync.WaitGroup, p *Plan) {
	h.hist.bind(p)
	h.plan.Store(p)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.routerCancel == nil {
		rctx, cancel := context.WithCancel(ctx)
		h.routerCancel, h.routerDone = cancel, make(chan struct{})
		wg.Add(1)
		go func(done chan struct{}, partitions int) {
			defer wg.Done()
			defer close(done)
			h.routeAll(rctx, partitions)
		}(h.routerDone, p.Partitions)
	}
	now := h.e.cfg.Now()
	for key, w := range h.workers {
		ep := p.Endpoints[key]
		if ep != nil && ep.fingerprint == w.fingerprint {
			continue
		}
		w.cancel()
		<-w.done
		delete(h.workers, key)
		if ep == nil {
			delete(h.trackers, key)
			h.dropQueue(ctx, key)
		}
	}
	for key, ep := range p.Endpoints {
		t := h.trackers[key]
		if t == nil {
			t = newHealthTracker(ep, h.recordSend)
			h.trackers[key] = t
		}
		t.rename(ep)
		if ep.problem != "" {
			t.problem(now, fmt.Sprintf("endpoint '%s' can't be used: %s", ep.Name, ep.problem))
			continue
		}
		if _, running := h.workers[key]; running {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &workerHandle{fingerprint: ep.fingerprint, cancel: cancel, done: make(chan struct{})}
		h.workers[key] = w
		var lanes sync.WaitGroup
		for lane := 0; lane < p.Partitions; lane++ {
			wk := &worker{e: h.e, hub: p.Hub, hubID: p.ResourceID, ep: ep, lane: lane, health: t}
			wg.Add(1)
			lanes.Add(1)
			go func() {
				defer wg.Done()
				defer lanes.Done()
				wk.run(wctx)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lanes.Wait()
			close(w.done)
		}()
	}
}

// dropQueue deletes an endpoint's consumer and purges its messages when
// the endpoint is no longer configured.
func (h *hubRuntime) dropQueue(ctx context.Context, key string) {
	js := h.e.cfg.Bus.JetStream()
	stream := h.e.cfg.Bus.Stream(queueStream(h.name))
	partitions := 1
	if p := h.plan.Load(); p != nil {
		partitions = p.Partitions
	}
	for lane := 0; lane < partitions; lane++ {
		if err := js.DeleteConsumer(ctx, stream, workerConsumer(key, lane)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			h.e.cfg.Log.Warn("routing: deleting a removed endpoint's consumer failed", "hub", h.name, "endpoint", key, "err", err)
		}
	}
	s, err := js.Stream(ctx, stream)
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject(h.e.cfg.Bus.Subject("routing", h.name, queueToken(key), "*")))
	}
	if err != nil {
		h.e.cfg.Log.Warn("routing: purging a removed endpoint's queue failed", "hub", h.name, "endpoint", key, "err", err)
	}
}

// stop cancels the router and workers; wait waits for them.
func (h *hubRuntime) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.routerCancel != nil {
		h.routerCancel()
	}
	for _, w := range h.workers {
		w.cancel()
	}
}

func (h *hubRuntime) wait() {
	h.mu.Lock()
	done := h.routerDone
	var workers []chan struct{}
	for _, w := range h.workers {
		workers = append(workers, w.done)
	}
	h.mu.Unlock()
	if done != nil {
		<-done
	}
	for _, d := range workers {
		<-d
	}
}

func (h *hubRuntime) health() []EndpointHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]EndpointHealth, 0, len(h.trackers))
	for _, t := range h.trackers {
		out = append(out, t.snapshot())
	}
	return out
}

// routeBatch evaluates the routes for each message and appends a copy to
// every matching endpoint's queue — for the built-in endpoint, to the
// hub's events subject of the message's partition; it returns once every
// copy is stored.
func (h *hubRuntime) routeBatch(ctx context.Context, msgs []jetstream.Msg) error {
	p := h.plan.Load()
	h.hist.tick(h.e.cfg.Now(), h.statuses)
	var waits []func(context.Context) (uint64, error)
	var targets []string
	var scratch any
	for _, raw := range msgs {
		tm := telemetry.Decode(p.Hub, raw)
		m := Message{Message: tm, Source: routeSource(tm.System[telemetry.PropMessageSource]), Scratch: scratch}
		if m.Source != SourceDeviceMessages {
			// Events are stored by kind, not partition; on an endpoint
			// they take their device's partition, as telemetry does.
			m.Partition = telemetry.Partition(m.DeviceID, p.Partitions)
		}
		h.stats.messages.Add(1)
		targets = targets[:0]
		for _, rt := range p.routes[m.Source] {
			if rt.cond.Match(&m) {
				rt.counter.add()
				if !contains(targets, rt.endpoint) {
					targets = append(targets, rt.endpoint)
				}
			}
		}
		scratch = m.Scratch
		if len(targets) == 0 {
			matched := m.Source == SourceDeviceMessages && p.fallback != nil && p.fallback.cond.Match(&m)
			scratch = m.Scratch
			if matched {
				targets = append(targets, p.fallback.endpoint)
				p.fallback.counter.add()
				h.stats.fallback.Add(1)
			} else {
				h.stats.unrouted.Add(1)
				continue
			}
		}
		for _, t := range targets {
			ep, subject := p.Endpoints[t], queueSubject(p.Hub, t, m.Partition)
			if t == BuiltInEndpoint {
				ep, subject = p.builtIn, telemetry.BuiltInSubject(p.Hub, m.Partition)
			}
			hdr := queueHeaders(ctx, raw, &m, ep, h.e.cfg.Twins)
			wait, err := h.e.cfg.Bus.PublishAsync(subject, raw.Data(), hdr)
			if err != nil {
				return fmt.Errorf("engine: queue for endpoint %s: %w", ep.Name, err)
			}
			waits = append(waits, wait)
			if t == BuiltInEndpoint {
				h.stats.builtIn.Add(1)
				h.hist.builtIn.Add(1)
			} else {
				h.stats.routed.Add(1)
			}
		}
	}
	for _, w := range waits {
		if _, err := w(ctx); err != nil {
			return fmt.Errorf("engine: queue routed message: %w", err)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// queueHeaders are the stored message's headers plus the endpoint's
// enrichments (application properties), the partition, and a message id
// that makes a re-routed batch (after a failure) a duplicate JetStream
// drops instead of a second copy.
func queueHeaders(ctx context.Context, raw jetstream.Msg, m *Message, ep *Endpoint, twins TwinReader) nats.Header {
	src := raw.Headers()
	hdr := make(nats.Header, len(src)+len(ep.Enrichments)+2)
	for k, v := range src {
		hdr[k] = v
	}
	for _, en := range ep.Enrichments {
		hdr.Set(telemetry.AppHeader(en.Key), enrichmentValue(ctx, en.Value, m, twins))
	}
	hdr.Set(hdrPartition, strconv.Itoa(m.Partition))
	hdr.Set(jetstream.MsgIDHeader, strconv.FormatUint(m.Sequence, 10)+"."+queueToken(ep.Name))
	return hdr
}

// fetch takes up to max messages: what is available now, or, when nothing
// is, waits up to a second for the first one (so latency stays low without
// spinning).
func fetch(ctx context.Context, cons jetstream.Consumer, max int) ([]jetstream.Msg, error) {
	msgs, err := collect(cons.FetchNoWait(max))
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	// The wait is the server-side expiry of the pull request, not a client
	// context: a request the client abandoned early would still receive a
	// message the server then considers delivered, and that message would
	// sit unacknowledged until AckWait.
	first, err := cons.Next(jetstream.FetchMaxWait(time.Second))
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
			return nil, nil
		}
		return nil, fmt.Errorf("engine: fetch: %w", err)
	}
	msgs = append(msgs, first)
	if max > 1 {
		more, err := collect(cons.FetchNoWait(max - 1))
		if err != nil {
			// The first message is held; the rest come next time.
			return msgs, nil
		}
		msgs = append(msgs, more...)
	}
	return msgs, nil
}

// ackAll acknowledges msgs in order; the last acknowledgement waits for
// the server's confirmation, which (acks being ordered on the connection)
// covers the earlier ones — so the next fetch is not refused for
// MaxAckPending while the acknowledgements are still on the way.
func ackAll(ctx context.Context, msgs []jetstream.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs[:len(msgs)-1] {
		if err := m.Ack(); err != nil {
			return fmt.Errorf("engine: ack: %w", err)
		}
	}
	if err := msgs[len(msgs)-1].DoubleAck(ctx); err != nil {
		return fmt.Errorf("engine: ack: %w", err)
	}
	return nil
}

func collect(b jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
	if err != nil {
		return nil, fmt.Errorf("engine: fetch: %w", err)
	}
	var out []jetstream.Msg
	for m := range b.Messages() {
		out = append(out, m)
	}
	if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
		return out, fmt.Errorf("engine: fetch: %w", err)
	}
	return out, nil
}
