package hubamqp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
	"github.com/outpost-iot/outpost/internal/hub/c2d"
	"github.com/outpost-iot/outpost/internal/hub/devicemqtt"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
)

// Content types of what services receive.
const (
	feedbackContentType         = "application/vnd.microsoft.iothub.feedback.json"
	fileNotificationContentType = "application/vnd.microsoft.iothub.json"
)

// How long a receive waits before looking at the link again: a detach ends
// the wait at once; a drain is answered within receiveWait (the Node SDKs
// never drain; go-amqp only when asked to).
const (
	receiveWait = 5 * time.Second
	drainWait   = 50 * time.Millisecond
)

// maxC2DBytes is IoT Hub's cloud-to-device message size limit.
const maxC2DBytes = 64 << 10

// c2dSendLink is the service's sender on /messages/devicebound.
func (h *Handler) c2dSendLink(ctx context.Context, c *amqp.Conn, claim string) *amqp.Inbound {
	work := newSerial()
	go work.run(ctx)
	return &amqp.Inbound{Claim: claim, Credit: 100, Receive: func(d *amqp.Delivery) {
		work.do(func() { h.sendC2D(ctx, c, d) })
	}}
}

// sendC2D queues one delivery's messages and settles it.
func (h *Handler) sendC2D(ctx context.Context, c *amqp.Conn, d *amqp.Delivery) {
	if ctx.Err() != nil {
		return // the link ended; the client sends it again
	}
	msgs, err := d.Batch()
	if err != nil {
		d.Reject(wire.Errorf("amqp:decode-error", "The message could not be decoded: %v.", err))
		return
	}
	hb, err := h.currentHub(ctx, c)
	if err != nil {
		d.Reject(asWireError(err))
		return
	}
	for _, m := range msgs {
		deviceID, moduleID, cm, refusal := c2dFromAMQP(m)
		if refusal != nil {
			d.Reject(refusal)
			return
		}
		if len(cm.Payload) > maxC2DBytes {
			d.Reject(wire.Errorf("amqp:link:message-size-exceeded", "The message body is %d bytes; IoT Hub takes cloud-to-device messages of at most %d KB.",
				len(cm.Payload), maxC2DBytes>>10))
			return
		}
		dev, found, err := h.cfg.Registry.Lookup(ctx, hb.Name, deviceID, moduleID)
		if err != nil {
			h.cfg.Log.Error("cloud-to-device send: device lookup", "hub", hb.Name, "device", deviceID, "err", err)
			d.Reject(wire.Errorf("amqp:internal-error", "The device registry could not be read; retry."))
			return
		}
		if !found {
			d.Reject(wire.Errorf("amqp:not-found", "%s is not registered in hub %s.", describe(deviceID, moduleID), hb.Name))
			return
		}
		cm.GenerationID = dev.GenerationID
		err = h.cfg.C2D.Send(ctx, hb.Name, deviceID, moduleID, cm, devicemqtt.C2DSettings(hb))
		if errors.Is(err, c2d.ErrQueueFull) {
			d.Reject(wire.Errorf("amqp:resource-limit-exceeded", "%s already has %d cloud-to-device messages queued; it must receive some first.",
				describe(deviceID, moduleID), c2d.MaxQueuedPerDevice))
			return
		}
		if err != nil {
			h.cfg.Log.Error("cloud-to-device send", "hub", hb.Name, "device", deviceID, "err", err)
			d.Reject(wire.Errorf("amqp:internal-error", "The message could not be queued; retry."))
			return
		}
		if h.cfg.C2DSent != nil {
			h.cfg.C2DSent(hb.Name, deviceID, moduleID)
		}
	}
	d.Accept()
}

func asWireError(err error) *wire.Error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	return wire.Errorf("amqp:internal-error", "%v", err)
}

// settlementOf maps a receiver's outcome: accepted completes, rejected
// rejects, released and modified abandon. ok is false for a non-terminal
// state.
func settlementOf(state any) (c2d.Settlement, bool) {
	switch state.(type) {
	case *wire.Accepted:
		return c2d.Complete, true
	case *wire.Rejected:
		return c2d.Reject, true
	case *wire.Released, *wire.Modified:
		return c2d.Abandon, true
	}
	return 0, false
}

// outstanding tracks what an Outbound link sent and the client has not
// settled yet, so that what is left when the link ends is given back.
type outstanding[T comparable] struct {
	mu    sync.Mutex
	items map[T]bool
}

func (o *outstanding[T]) add(v T) {
	o.mu.Lock()
	if o.items == nil {
		o.items = map[T]bool{}
	}
	o.items[v] = true
	o.mu.Unlock()
}

// take removes v and reports whether it was still outstanding.
func (o *outstanding[T]) take(v T) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.items[v] {
		return false
	}
	delete(o.items, v)
	return true
}

func (o *outstanding[T]) drain() []T {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]T, 0, len(o.items))
	for v := range o.items {
		out = append(out, v)
	}
	o.items = nil
	return out
}

// sendUnsettled sends msg and hands its outcome to settle on work; on a
// pre-settled link the delivery counts as accepted when sent. It reports
// whether the message went out.
func sendUnsettled(ctx context.Context, s *amqp.Sender, work *serial, msg *wire.Message, settle func(c2d.Settlement)) bool {
	raw, err := msg.Marshal()
	if err != nil {
		settle(c2d.Abandon)
		return false
	}
	if s.PreSettled() {
		if err := s.Send(ctx, raw, amqp.SendOptions{Settled: true}); err != nil {
			settle(c2d.Abandon)
			return false
		}
		settle(c2d.Complete)
		return true
	}
	err = s.Send(ctx, raw, amqp.SendOptions{OnOutcome: func(state any) any {
		if how, ok := settlementOf(state); ok {
			work.do(func() { settle(how) })
		}
		return nil
	}})
	if err != nil {
		settle(c2d.Abandon)
		return false
	}
	return true
}

// pump is the loop of the service's and devices' receiver links: wait for
// credit, take the next item (waiting at most wait), send it; answer a
// drain when nothing is there. next returns false when nothing came.
func pump(ctx context.Context, s *amqp.Sender, next func(wait time.Duration) bool) error {
	for {
		credit, drain, err := s.Wait(ctx)
		if err != nil {
			return nil // detached or closed
		}
		if credit == 0 {
			s.Drained()
			continue
		}
		wait := receiveWait
		if drain {
			wait = drainWait
		}
		if !next(wait) && drain {
			s.Drained()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// feedbackLink is the service's receiver on /messages/serviceBound/feedback:
// one message per batch of records, JSON array body.
func (h *Handler) feedbackLink(c *amqp.Conn, claim string) *amqp.Outbound {
	return &amqp.Outbound{Claim: claim, Run: func(ctx context.Context, s *amqp.Sender) error {
		work := newSerial()
		done := make(chan struct{})
		go func() { work.run(ctx); close(done) }()
		var held outstanding[*c2d.FeedbackBatch]
		defer func() {
			<-done
			for _, b := range held.drain() {
				_ = h.cfg.C2D.SettleFeedback(context.WithoutCancel(ctx), b, c2d.Abandon)
			}
		}()
		st := state(c)
		return pump(ctx, s, func(wait time.Duration) bool {
			b, err := h.cfg.C2D.ReceiveFeedback(ctx, st.hub, c2d.FeedbackSettings{}, 100, wait)
			if err != nil {
				h.cfg.Log.Warn("feedback receive", "hub", st.hub, "err", err)
				sleep(ctx, time.Second)
				return false
			}
			if b == nil {
				return false
			}
			body, _ := json.Marshal(b.Records)
			msg := &wire.Message{
				Header: &wire.Header{Durable: true, Priority: 4, DeliveryCount: uint32(max(b.DeliveryCount-1, 0))},
				Properties: &wire.Properties{MessageID: newMessageID(), UserID: []byte(st.hub), To: "/messages/servicebound/feedback",
					ContentType: feedbackContentType, ContentEncoding: "utf-8", CreationTime: h.cfg.Now().UTC()},
				Data: [][]byte{body},
			}
			held.add(b)
			sendUnsettled(ctx, s, work, msg, func(how c2d.Settlement) {
				if !held.take(b) {
					return
				}
				if err := h.cfg.C2D.SettleFeedback(context.WithoutCancel(ctx), b, how); err != nil {
					h.cfg.Log.Info("feedback settlement", "hub", st.hub, "err", err)
				}
			})
			return true
		})
	}}
}

// fileNotificationLink is the service's receiver on
// /messages/serviceBound/filenotifications: one notification per message.
func (h *Handler) fileNotificationLink(c *amqp.Conn, claim string) *amqp.Outbound {
	return &amqp.Outbound{Claim: claim, Run: func(ctx context.Context, s *amqp.Sender) error {
		work := newSerial()
		done := make(chan struct{})
		go func() { work.run(ctx); close(done) }()
		var held outstanding[string]
		defer func() {
			<-done
			for _, token := range held.drain() {
				_ = h.cfg.Files.Settle(context.WithoutCancel(ctx), token, fileupload.Abandon)
			}
		}()
		return pump(ctx, s, func(wait time.Duration) bool {
			hb, err := h.currentHub(ctx, c)
			if err != nil {
				sleep(ctx, time.Second)
				return false
			}
			n, token, err := h.cfg.Files.Receive(ctx, hb, wait)
			if err != nil {
				h.cfg.Log.Warn("file notification receive", "hub", hb.Name, "err", err)
				sleep(ctx, time.Second)
				return false
			}
			if n == nil {
				return false
			}
			body, _ := json.Marshal(n)
			msg := &wire.Message{
				Header: &wire.Header{Durable: true, Priority: 4, DeliveryCount: uint32(max(n.DeliveryCount-1, 0))},
				Properties: &wire.Properties{MessageID: newMessageID(), UserID: []byte(hb.Name), To: "/messages/servicebound/filenotifications",
					ContentType: fileNotificationContentType, ContentEncoding: "utf-8", CreationTime: n.EnqueuedTimeUTC.UTC()},
				Data: [][]byte{body},
			}
			held.add(token)
			sendUnsettled(ctx, s, work, msg, func(how c2d.Settlement) {
				if !held.take(token) {
					return
				}
				fh := fileupload.Complete
				switch how {
				case c2d.Abandon:
					fh = fileupload.Abandon
				case c2d.Reject:
					fh = fileupload.Reject
				}
				if err := h.cfg.Files.Settle(context.WithoutCancel(ctx), token, fh); err != nil {
					h.cfg.Log.Info("file notification settlement", "hub", hb.Name, "err", err)
				}
			})
			return true
		})
	}}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// newMessageID is a random UUID (version 4) as an AMQP uuid.
func newMessageID() wire.UUID {
	var u wire.UUID
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}
