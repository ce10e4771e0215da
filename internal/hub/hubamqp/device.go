package hubamqp

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/devicemqtt"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
	"github.com/outpost-iot/outpost/internal/hub/throttle"
)

// telemetryLink is a device's sender on /devices/{id}/messages/events.
// Messages are pipelined: each is handed to JetStream as it arrives (start),
// and accepted in order once its own store is acknowledged (confirm), so a
// device may have many in flight and none is accepted before it is stored.
func (h *Handler) telemetryLink(ctx context.Context, c *amqp.Conn, id deviceauth.Identity, claim string) *amqp.Inbound {
	start, confirm := newSerial(), newSerial()
	go start.run(ctx)
	go confirm.run(ctx)
	return &amqp.Inbound{Claim: claim, Credit: 1000, Receive: func(d *amqp.Delivery) {
		start.do(func() { h.startTelemetry(ctx, id, d, confirm) })
	}}
}

func (h *Handler) startTelemetry(ctx context.Context, id deviceauth.Identity, d *amqp.Delivery, confirm *serial) {
	if ctx.Err() != nil {
		return // the link ended; the device sends it again
	}
	msgs, err := d.Batch()
	if err != nil {
		d.Reject(wire.Errorf("amqp:decode-error", "The message could not be decoded: %v.", err))
		return
	}
	waits := make([]func(context.Context) error, 0, len(msgs))
	for _, m := range msgs {
		tm := telemetryFromAMQP(m)
		if len(tm.Payload) > serviceapi.MaxMessageBytes {
			d.Reject(wire.Errorf("amqp:link:message-size-exceeded",
				"The message is larger than the %d KB IoT Hub accepts; split it or upload it as a file.", serviceapi.MaxMessageBytes>>10))
			return
		}
		wait, err := h.cfg.Telemetry.StartTelemetry(id, tm)
		if errors.Is(err, throttle.ErrThrottled) {
			d.Reject(wire.Errorf("com.microsoft:device-container-throttled", "%s", err.Error()))
			return
		}
		if err != nil {
			h.cfg.Log.Error("device telemetry", "hub", id.Hub.Name, "device", id.DeviceID, "err", err)
			d.Reject(wire.Errorf("amqp:internal-error", "The message could not be stored; send it again."))
			return
		}
		waits = append(waits, wait)
	}
	confirm.do(func() {
		for _, wait := range waits {
			if err := wait(ctx); err != nil {
				if ctx.Err() == nil {
					h.cfg.Log.Error("device telemetry", "hub", id.Hub.Name, "device", id.DeviceID, "err", err)
				}
				d.Reject(wire.Errorf("amqp:internal-error", "The message could not be stored; send it again."))
				return
			}
		}
		d.Accept()
	})
}

// deviceBoundLink is a device's receiver on /devices/{id}/messages/devicebound:
// its cloud-to-device messages, each held under the queue's lock until the
// device's disposition settles it.
func (h *Handler) deviceBoundLink(c *amqp.Conn, id deviceauth.Identity, claim string) *amqp.Outbound {
	return &amqp.Outbound{Claim: claim, Run: func(ctx context.Context, s *amqp.Sender) error {
		work := newSerial()
		done := make(chan struct{})
		go func() { work.run(ctx); close(done) }()
		var held outstanding[jetstream.Msg]
		defer func() {
			<-done
			for _, jm := range held.drain() {
				_ = h.cfg.C2D.SettleDelivery(context.WithoutCancel(ctx), jm, c2d.Abandon)
			}
		}()
		return pump(ctx, s, func(wait time.Duration) bool {
			hb, err := h.currentHub(ctx, c)
			if err != nil {
				sleep(ctx, time.Second)
				return false
			}
			m, jm, err := h.cfg.C2D.Next(ctx, hb.Name, id.DeviceID, id.ModuleID, devicemqtt.C2DSettings(hb), wait)
			if err != nil {
				h.cfg.Log.Warn("cloud-to-device fetch", "hub", hb.Name, "device", id.DeviceID, "err", err)
				sleep(ctx, time.Second)
				return false
			}
			if m == nil {
				return false
			}
			held.add(jm)
			sendUnsettled(ctx, s, work, c2dToAMQP(m, id.DeviceID, id.ModuleID), func(how c2d.Settlement) {
				if !held.take(jm) {
					return
				}
				if err := h.cfg.C2D.SettleDelivery(context.WithoutCancel(ctx), jm, how); err != nil {
					h.cfg.Log.Info("cloud-to-device settlement", "hub", hb.Name, "device", id.DeviceID, "err", err)
				}
			})
			return true
		})
	}}
}
