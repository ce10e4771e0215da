package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

// legacyRouterConsumer is the one router consumer hubs had before each
// partition and event source got its own: ensureRouters starts the new
// consumers after what it acknowledged, then deletes it.
const legacyRouterConsumer = "router"

// routerSlot is one of a hub's routers: a partition's device messages
// (slots 0…P-1) or one event source's events (the slots after them). Each
// has its own durable consumer, and Config.Owns names the one node that
// reads it — so the routers of a hub spread over the nodes, and a
// partition is routed in order.
type routerSlot struct {
	index   int
	durable string
	subject string // logical
}

func routerSlots(hub string, partitions int) []routerSlot {
	sources := telemetry.EventSources()
	slots := make([]routerSlot, 0, partitions+len(sources))
	for p := range partitions {
		slots = append(slots, routerSlot{index: p, durable: "router-" + strconv.Itoa(p),
			subject: telemetry.RouterPartitionSubject(hub, p)})
	}
	for i, src := range sources {
		slots = append(slots, routerSlot{index: partitions + i, durable: "router-" + src,
			subject: telemetry.SourceSubject(hub, src)})
	}
	return slots
}

// EnsureRouter creates (or finds) a hub's durable router consumers. The
// hub runtime calls it right after creating the hub's stream, before any
// device can publish to it: the consumers deliver everything from the
// stream's start, so no message stored for a router is ever missed, even
// when the engine's Run gets to the hub later. MaxAckPending bounds what
// one batch may hold, so whichever node reads a slot — and during a
// change of membership two may, for a moment — the slot's unacknowledged
// batch is routed (again) before anything newer.
func (e *Engine) EnsureRouter(ctx context.Context, hub string, partitions int) error {
	_, err := e.ensureRouters(ctx, strings.ToLower(hub), partitions)
	return err
}

func (e *Engine) ensureRouters(ctx context.Context, hub string, partitions int) ([]jetstream.Consumer, error) {
	js, stream := e.cfg.Bus.JetStream(), e.cfg.Bus.Stream(hubStream(hub))
	var legacy *jetstream.ConsumerInfo
	if c, err := js.Consumer(ctx, stream, legacyRouterConsumer); err == nil {
		legacy = c.CachedInfo()
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("engine: router consumers of %s: %w", hub, err)
	}
	slots := routerSlots(hub, partitions)
	out := make([]jetstream.Consumer, len(slots))
	for i, s := range slots {
		c, err := e.routerConsumer(ctx, hub, s, legacy)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	if legacy != nil {
		if err := js.DeleteConsumer(ctx, stream, legacyRouterConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("engine: retire the router consumer of %s: %w", hub, err)
		}
		e.cfg.Log.Info("routing: hub moved to a router per partition and event source", "hub", hub,
			"from stream sequence", legacy.AckFloor.Stream+1)
	}
	return out, nil
}

// deleteRouters deletes a removed hub's router consumers (when its stream
// still exists).
func (e *Engine) deleteRouters(ctx context.Context, hub string) error {
	stream, err := e.cfg.Bus.JetStream().Stream(ctx, e.cfg.Bus.Stream(hubStream(hub)))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("engine: delete routers of %s: %w", hub, err)
	}
	lister := stream.ConsumerNames(ctx)
	var routers []string
	for name := range lister.Name() {
		if name == legacyRouterConsumer || strings.HasPrefix(name, legacyRouterConsumer+"-") {
			routers = append(routers, name)
		}
	}
	var errs []error
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		errs = append(errs, fmt.Errorf("engine: list routers of %s: %w", hub, err))
	}
	for _, name := range routers {
		if err := stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, fmt.Errorf("engine: delete router %s of %s: %w", name, hub, err))
		}
	}
	return errors.Join(errs...)
}

// routerConsumer finds a slot's consumer, creating it when missing: from
// the stream's start, or after what the legacy consumer acknowledged.
func (e *Engine) routerConsumer(ctx context.Context, hub string, s routerSlot, legacy *jetstream.ConsumerInfo) (jetstream.Consumer, error) {
	b := e.cfg.Bus
	c, err := b.JetStream().Consumer(ctx, b.Stream(hubStream(hub)), s.durable)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("engine: router consumer %s of %s: %w", s.durable, hub, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       s.durable,
		Description:   "IoT Hub message routing",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxDeliver:    -1,
		MaxAckPending: e.cfg.RouterBatch,
		FilterSubject: b.Subject(s.subject),
	}
	if legacy != nil && legacy.AckFloor.Stream > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, legacy.AckFloor.Stream+1
	}
	// Two nodes may create it at once with the same configuration; that is
	// not an error.
	c, err = b.JetStream().CreateOrUpdateConsumer(ctx, b.Stream(hubStream(hub)), cfg)
	if err != nil {
		return nil, fmt.Errorf("engine: router consumer %s of %s: %w", s.durable, hub, err)
	}
	return c, nil
}

// routeAll runs the hub's routers until ctx ends: one loop per slot, each
// reading only while this node owns the slot.
func (h *hubRuntime) routeAll(ctx context.Context, partitions int) {
	var consumers []jetstream.Consumer
	for failures := 1; ctx.Err() == nil; failures++ {
		var err error
		if consumers, err = h.e.ensureRouters(ctx, h.name, partitions); err == nil {
			break
		}
		if failures == 1 || failures%20 == 0 {
			h.e.cfg.Log.Warn("routing: waiting for the hub's stream", "hub", h.name, "err", err)
		}
		sleep(ctx, backoff(100*time.Millisecond, 5*time.Second, failures))
	}
	if ctx.Err() != nil {
		return
	}
	var loops sync.WaitGroup
	for i, s := range routerSlots(h.name, partitions) {
		loops.Add(1)
		go func() {
			defer loops.Done()
			h.route(ctx, s, consumers[i])
		}()
	}
	loops.Wait()
}

// route runs one router slot until ctx ends.
func (h *hubRuntime) route(ctx context.Context, s routerSlot, cons jetstream.Consumer) {
	log := h.e.cfg.Log.With("hub", h.name, "router", s.durable)
	failures := 0
	for ctx.Err() == nil {
		if !h.e.cfg.Owns(h.name, s.index) {
			sleep(ctx, h.e.cfg.OwnershipPoll)
			continue
		}
		if cons == nil {
			var err error
			if cons, err = h.e.routerConsumer(ctx, h.name, s, nil); err != nil {
				failures++
				if failures == 1 || failures%20 == 0 {
					log.Warn("routing: waiting for the hub's stream", "err", err)
				}
				sleep(ctx, backoff(100*time.Millisecond, 5*time.Second, failures))
				continue
			}
			failures = 0
		}
		msgs, err := fetch(ctx, cons, h.e.cfg.RouterBatch)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("routing: reading the hub's stream failed", "err", err)
				cons = nil
				sleep(ctx, time.Second)
			}
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		if err := h.routeBatch(ctx, msgs); err != nil {
			for _, m := range msgs {
				_ = m.Nak()
			}
			if ctx.Err() == nil {
				failures++
				log.Error("routing: queueing routed messages failed; they will be routed again", "err", err)
				sleep(ctx, backoff(100*time.Millisecond, 5*time.Second, failures))
			}
			continue
		}
		failures = 0
		if err := ackAll(ctx, msgs); err != nil && ctx.Err() == nil {
			log.Warn("routing: acknowledging routed messages failed; they may be routed twice", "err", err)
		}
	}
}
