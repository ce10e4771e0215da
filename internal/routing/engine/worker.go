package engine

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

// workerConsumer is the durable consumer name of one partition (lane) of
// an endpoint's queue.
func workerConsumer(endpoint string, lane int) string {
	return "ep-" + queueToken(endpoint) + "-" + strconv.Itoa(lane)
}

// queued is one routed message taken from an endpoint's queue.
type queued struct {
	raw    jetstream.Msg
	m      telemetry.Message
	source string // iothub-message-source
	size   int
}

func decodeQueued(hub string, raw jetstream.Msg) *queued {
	m := telemetry.Decode(hub, raw)
	m.Partition, _ = strconv.Atoi(raw.Headers().Get(hdrPartition))
	q := &queued{raw: raw, m: m, source: m.System[telemetry.PropMessageSource], size: len(m.Payload)}
	for k, v := range m.App {
		q.size += len(k) + len(v)
	}
	for k, v := range m.System {
		q.size += len(k) + len(v)
	}
	return q
}

// worker delivers one partition (lane) of an endpoint's queue, in order,
// until its context ends.
type worker struct {
	e      *Engine
	hub    string
	hubID  string
	ep     *Endpoint
	lane   int
	health *healthTracker
}

func (w *worker) run(ctx context.Context) {
	log := w.e.cfg.Log.With("hub", w.hub, "endpoint", w.ep.Name)
	var cons jetstream.Consumer
	for attempt := 1; cons == nil; attempt++ {
		var err error
		if cons, err = w.consumer(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("routing: endpoint queue not ready", "err", err)
			if !sleep(ctx, backoff(100*time.Millisecond, 5*time.Second, attempt)) {
				return
			}
		}
	}
	if w.ep.Kind == KindStorage {
		w.runStorage(ctx, cons)
		return
	}
	w.runMessaging(ctx, cons)
}

// consumer creates the endpoint's durable consumer. Event Hubs and Service
// Bus endpoints hold at most one batch unacknowledged, so after a restart
// the held batch comes back before anything newer (order per partition
// survives crashes). Storage endpoints hold a whole window.
func (w *worker) consumer(ctx context.Context) (jetstream.Consumer, error) {
	b := w.e.cfg.Bus
	cfg := jetstream.ConsumerConfig{
		Durable:       workerConsumer(w.ep.Name, w.lane),
		Description:   "IoT Hub routing endpoint " + w.ep.Name,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		MaxDeliver:    -1,
		FilterSubject: b.Subject(queueSubject(w.hub, w.ep.Name, w.lane)),
		AckWait:       2*w.e.cfg.RetryMax + w.e.cfg.SendTimeout,
		MaxAckPending: w.e.cfg.MaxBatchMessages,
	}
	if w.ep.Kind == KindStorage {
		cfg.AckWait = w.window() + 2*w.e.cfg.RetryMax + w.e.cfg.SendTimeout
		cfg.MaxAckPending = w.e.cfg.StorageMaxPending
	}
	c, err := b.JetStream().CreateOrUpdateConsumer(ctx, b.Stream(queueStream(w.hub)), cfg)
	if err != nil {
		return nil, fmt.Errorf("engine: consumer of endpoint %s: %w", w.ep.Name, err)
	}
	return c, nil
}

// window is the storage batch window: the endpoint's batch frequency, not
// below the configured minimum.
func (w *worker) window() time.Duration {
	return max(w.ep.BatchFrequency, w.e.cfg.MinBatchFrequency)
}

// owned says whether this node delivers the worker's partition: the node
// that routes a partition delivers it (Config.Owns).
func (w *worker) owned() bool { return w.e.cfg.Owns(w.hub, w.lane) }

func (w *worker) runMessaging(ctx context.Context, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		if !w.owned() {
			sleep(ctx, w.e.cfg.OwnershipPoll)
			continue
		}
		msgs, err := fetch(ctx, cons, w.e.cfg.MaxBatchMessages)
		if err != nil {
			w.e.cfg.Log.Warn("routing: reading an endpoint queue failed", "hub", w.hub, "endpoint", w.ep.Name, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		items := make([]*queued, len(msgs))
		for i, m := range msgs {
			items[i] = decodeQueued(w.hub, m)
		}
		for len(items) > 0 {
			n, size := 0, 0
			for n < len(items) && (n == 0 || size+items[n].size <= w.e.cfg.MaxBatchBytes) {
				size += items[n].size
				n++
			}
			batch := items[:n]
			ok := w.deliver(ctx, len(batch), func(ctx context.Context) error {
				return w.e.messaging.send(ctx, w.hubID, w.ep, batch)
			}, batch)
			if !ok {
				nakAll(items)
				return
			}
			items = items[n:]
		}
	}
}

// deliver sends until it succeeds (acknowledging the batch) or ctx ends
// (false; the caller returns the messages to the queue). Failures are
// retried with backoff, the messages kept: nothing is dropped.
func (w *worker) deliver(ctx context.Context, n int, send func(context.Context) error, batch []*queued) bool {
	cfg := &w.e.cfg
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, cfg.SendTimeout)
		err := send(sctx)
		cancel()
		if err == nil {
			msgs := make([]jetstream.Msg, len(batch))
			for i, q := range batch {
				msgs[i] = q.raw
			}
			if err := ackAll(ctx, msgs); err != nil && ctx.Err() == nil {
				cfg.Log.Warn("routing: acknowledging delivered messages failed; they may be delivered twice", "hub", w.hub, "endpoint", w.ep.Name, "err", err)
			}
			w.health.success(cfg.Now(), n)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.health.failure(cfg.Now(), err, cfg)
		if attempt == 1 || attempt%10 == 0 {
			cfg.Log.Warn("routing: delivery failed; retrying", "hub", w.hub, "endpoint", w.ep.Name, "attempt", attempt, "messages", n, "err", err)
		}
		// Keep the batch ours while we wait, so JetStream doesn't hand it
		// out again behind our back.
		for _, q := range batch {
			_ = q.raw.InProgress()
		}
		if !sleep(ctx, backoff(cfg.RetryBase, cfg.RetryMax, attempt)) {
			return false
		}
	}
}

func nakAll(items []*queued) {
	for _, q := range items {
		_ = q.raw.Nak()
	}
}

// storageWindow is one partition's open batch.
type storageWindow struct {
	start time.Time
	items []*queued
	bytes int
}

func (w *worker) runStorage(ctx context.Context, cons jetstream.Consumer) {
	// One lane holds one partition; the map keeps the code honest should a
	// message carry another.
	windows := map[int]*storageWindow{}
	held := 0
	defer func() {
		for _, win := range windows {
			nakAll(win.items)
		}
	}()
	for ctx.Err() == nil {
		now := w.e.cfg.Now()
		// A node that no longer owns the partition writes what it holds
		// (so its blob comes before the new owner's) and stops reading.
		owned := w.owned()
		full := held >= w.e.cfg.StorageMaxPending
		for _, p := range sortedPartitions(windows) {
			win := windows[p]
			if owned && !full && now.Sub(win.start) < w.window() && win.bytes < w.ep.MaxChunkBytes {
				continue
			}
			if !w.flush(ctx, p, win) {
				return
			}
			held -= len(win.items)
			delete(windows, p)
		}
		if !owned {
			sleep(ctx, w.e.cfg.OwnershipPoll)
			continue
		}
		msgs, err := fetch(ctx, cons, min(1000, w.e.cfg.StorageMaxPending-held))
		if err != nil {
			w.e.cfg.Log.Warn("routing: reading an endpoint queue failed", "hub", w.hub, "endpoint", w.ep.Name, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		for _, raw := range msgs {
			q := decodeQueued(w.hub, raw)
			win := windows[q.m.Partition]
			if win == nil {
				win = &storageWindow{start: w.e.cfg.Now()}
				windows[q.m.Partition] = win
			}
			win.items = append(win.items, q)
			win.bytes += q.size
			held++
		}
	}
}

func sortedPartitions(m map[int]*storageWindow) []int {
	out := make([]int, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// flush writes one window as one blob.
func (w *worker) flush(ctx context.Context, partition int, win *storageWindow) bool {
	data, err := encodeBlob(w.ep.Encoding, win.items)
	if err != nil {
		// Encoding only fails on a bug; keep the messages and say so.
		w.health.failure(w.e.cfg.Now(), fmt.Errorf("encoding %d messages as %s failed: %w", len(win.items), w.ep.Encoding, err), &w.e.cfg)
		return false
	}
	name := blobName(w.ep.FileNameFormat, w.hub, partition, win.start)
	return w.deliver(ctx, len(win.items), func(ctx context.Context) error {
		return w.e.storage.upload(ctx, w.hubID, w.ep, name, data)
	}, win.items)
}
