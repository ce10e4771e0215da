package servicebus

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// senderLink serves a client's sender on a queue or topic.
func (a *amqpHandler) senderLink(ctx context.Context, c *amqp.Conn, e amqpEntity) (amqp.Link, error) {
	if !(e.queue != nil || (e.topic != nil && e.sub == nil)) || e.dlq || e.transfer {
		return nil, wire.Errorf("amqp:not-allowed", "Messages are sent to a queue or a topic, not to '%s'.", e.path())
	}
	claim, err := a.authorize(c, e, rightSend, false)
	if err != nil {
		return nil, err
	}
	if st := e.settings().Status; st == "Disabled" || st == "SendDisabled" {
		return nil, wire.Errorf("com.microsoft:entity-disabled", "The messaging entity '%s' is %s; set its status to Active.", e.resource(), st)
	}
	limit := maxStandardMessage
	if strings.EqualFold(e.ns.sku, "Premium") {
		limit = maxPremiumMessage
	}
	s := &amqpSender{a: a, ctx: ctx, path: e.path(), nsName: e.ns.name, last: closedChan}
	return &amqp.Inbound{Receive: s.receive, MaxMessageSize: uint64(limit), Claim: claim}, nil
}

// closedChan is an already closed channel: nothing to wait for.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// amqpSender stores what a sender link delivers. Each delivery is stored
// on its own goroutine (the connection's reader never waits for
// JetStream) but after the one before it, so a link's messages keep their
// order; it is settled once every message in it is stored.
type amqpSender struct {
	a      *amqpHandler
	ctx    context.Context // the link's: ends when it detaches
	nsName string
	path   string
	// last is closed when the previous delivery is done. Only receive,
	// which the connection's reader calls in order, touches it.
	last chan struct{}
}

func (s *amqpSender) receive(d *amqp.Delivery) {
	prev, done := s.last, make(chan struct{})
	s.last = done
	go func() {
		defer close(done)
		msgs, err := s.parse(d)
		select {
		case <-prev:
		case <-s.ctx.Done():
			return
		}
		if err == nil {
			err = s.store(msgs)
		}
		if err != nil {
			d.Reject(asDeliveryError(err, s.a))
			return
		}
		d.Accept()
	}()
}

// parse converts a delivery's messages (one, or an Azure batch).
func (s *amqpSender) parse(d *amqp.Delivery) ([]sentMessage, error) {
	batch, err := d.Batch()
	if err != nil {
		return nil, wire.Errorf("amqp:decode-error", "The message cannot be decoded: %v.", err)
	}
	if len(batch) == 0 {
		return nil, wire.Errorf("amqp:decode-error", "The batch holds no message.")
	}
	out := make([]sentMessage, 0, len(batch))
	for _, w := range batch {
		sm, err := fromAMQP(w)
		if err != nil {
			return nil, err
		}
		out = append(out, sm)
	}
	return out, nil
}

// store stamps and stores the messages on the entity as it is configured
// now (it may have changed, or gone, since the link attached).
func (s *amqpSender) store(msgs []sentMessage) error {
	ctx := s.ctx
	view, err := s.a.h.dir.get(ctx, s.nsName)
	if err != nil {
		return err
	}
	if view == nil {
		return wire.Errorf("amqp:not-found", "The Service Bus namespace '%s' no longer exists.", s.nsName)
	}
	e, err := s.a.resolve(view, addressSegments(s.path))
	if err != nil {
		return err
	}
	if st := e.settings().Status; st == "Disabled" || st == "SendDisabled" {
		return wire.Errorf("com.microsoft:entity-disabled", "The messaging entity '%s' is %s; set its status to Active.", e.resource(), st)
	}
	now := s.a.h.cfg.Now().UTC()
	var due []*Message
	for _, sm := range msgs {
		if sm.scheduled.After(now) {
			if _, err := s.a.schedule(ctx, view, e, sm); err != nil {
				return err
			}
			continue
		}
		if err := stamp(e.settings(), sm.m, now); err != nil {
			return wire.Errorf("amqp:invalid-field", "The message's time to live is invalid: %v.", err)
		}
		due = append(due, sm.m)
	}
	if len(due) == 0 {
		return nil
	}
	_, err = s.a.h.store(ctx, view, e.queue, e.topic, due, time.Time{})
	return err
}

// schedule stores a message to be enqueued at its scheduled time and
// returns its sequence number.
func (a *amqpHandler) schedule(ctx context.Context, view *namespaceView, e amqpEntity, sm sentMessage) (uint64, error) {
	if err := stamp(e.settings(), sm.m, sm.scheduled); err != nil {
		return 0, wire.Errorf("amqp:invalid-field", "The message's time to live is invalid: %v.", err)
	}
	seqs, err := a.h.store(ctx, view, e.queue, e.topic, []*Message{sm.m}, sm.scheduled)
	if errors.Is(err, errSchedulingUnsupported) {
		// Refused rather than delivered early, with the condition the
		// SDKs take as final.
		return 0, wire.Errorf("amqp:not-allowed", "Scheduled messages (x-opt-scheduled-enqueue-time %s) need a NATS server that schedules messages (2.12 or later); send the message when it is due.",
			sm.scheduled.UTC().Format(time.RFC3339))
	}
	if err != nil {
		return 0, err
	}
	return seqs[0], nil
}

// asDeliveryError is the rejected outcome's error for a failed send: the
// handler's own AMQP errors as they are, anything else a retryable
// server-busy (the store did not take the message).
func asDeliveryError(err error, a *amqpHandler) *wire.Error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	a.h.log.Warn("servicebus: AMQP send not stored", "err", err)
	return wire.Errorf("com.microsoft:server-busy", "The message could not be stored; retry. (%v)", err)
}
