package devicemqtt

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/mqtt"
)

// HubLookup finds a hub's settings.
type HubLookup interface {
	Get(ctx context.Context, name string) (hub.Hub, bool, error)
}

// C2DSettings are a hub's cloud-to-device settings as the queue needs them.
func C2DSettings(h hub.Hub) c2d.Settings {
	return c2d.Settings{MaxDeliveryCount: h.C2DMaxDeliveryCount, DefaultTTL: h.C2DDefaultTTL, LockDuration: time.Minute}
}

// c2dPusher moves queued cloud-to-device messages to connected devices:
// one worker per connected device, in order, one message in flight (the
// device's PUBACK completes it; a lost connection returns it to the queue).
type c2dPusher struct {
	queue *c2d.Queue
	hubs  HubLookup
	wake  chan mqtt.DeviceKey
}

// EnableC2D attaches the queue; RunC2D then pushes messages to devices.
func (h *Hub) EnableC2D(q *c2d.Queue, hubs HubLookup) {
	h.c2d = &c2dPusher{queue: q, hubs: hubs, wake: make(chan mqtt.DeviceKey, 1024)}
}

// NotifyC2D tells the pusher a device may have new messages: this node's,
// or through the relay the pusher of the node holding the device.
func (h *Hub) NotifyC2D(key mqtt.DeviceKey) {
	h.wakeC2D(key)
	if h.relay != nil {
		h.relay.c2dQueued(key)
	}
}

// wakeC2D wakes this node's pusher for the device.
func (h *Hub) wakeC2D(key mqtt.DeviceKey) {
	if h.c2d == nil {
		return
	}
	select {
	case h.c2d.wake <- key:
	default: // the worker polls anyway
	}
}

// RunC2D runs the per-device workers until ctx ends.
func (h *Hub) RunC2D(ctx context.Context) error {
	if h.c2d == nil {
		<-ctx.Done()
		return nil
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running = map[mqtt.DeviceKey]bool{}
	)
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case key := <-h.c2d.wake:
			mu.Lock()
			if running[key] {
				mu.Unlock()
				continue
			}
			running[key] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.pushC2D(ctx, key)
				mu.Lock()
				delete(running, key)
				mu.Unlock()
			}()
		}
	}
}

// pushC2D delivers a device's queued messages while it stays connected and
// returns when the queue is empty: a worker (and the device's consumer)
// exists only while there is something to deliver, so idle connections cost
// nothing here. Sends and connects wake a worker again.
func (h *Hub) pushC2D(ctx context.Context, key mqtt.DeviceKey) {
	s := h.server.Load()
	if s == nil || !s.IsConnected(key) {
		return
	}
	if has, err := h.c2d.queue.Pending(ctx, key.Hub, key.DeviceID, key.ModuleID); err != nil || !has {
		return
	}
	warned := false
	for ctx.Err() == nil && s.IsConnected(key) {
		hb, ok, err := h.c2d.hubs.Get(ctx, key.Hub)
		if err != nil || !ok {
			return
		}
		m, jm, err := h.c2d.queue.Next(ctx, key.Hub, key.DeviceID, key.ModuleID, C2DSettings(hb), 500*time.Millisecond)
		if err != nil {
			if !warned {
				h.log.Warn("cloud-to-device fetch", "device", key.DeviceID, "err", err)
				warned = true
			}
			sleep(ctx, time.Second)
			continue
		}
		if m == nil {
			return // empty (or everything locked elsewhere): a send wakes us again
		}
		acked := make(chan error, 1)
		delivery := mqtt.Delivery{Kind: mqtt.DeliverC2D, Payload: m.Payload, Properties: m.Properties(),
			Acked: func(e error) { acked <- e }}
		err = s.Deliver(ctx, key, delivery)
		// A device that connected but has not subscribed yet keeps the
		// message under lock (extended, not redelivered: waiting must not
		// count towards maxDeliveryCount) until it subscribes or goes.
		for errors.Is(err, mqtt.ErrNotSubscribed) && ctx.Err() == nil && s.IsConnected(key) {
			_ = jm.InProgress()
			sleep(ctx, time.Second)
			err = s.Deliver(ctx, key, delivery)
		}
		if err != nil {
			_ = jm.Nak()
			return
		}
		select {
		case e := <-acked:
			if e == nil {
				if err := h.c2d.queue.SettleDelivery(ctx, jm, c2d.Complete); err != nil {
					h.log.Info("cloud-to-device completion", "device", key.DeviceID, "err", err)
				}
			} else {
				_ = h.c2d.queue.SettleDelivery(ctx, jm, c2d.Abandon)
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
