package servicebus

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// receivePoll is how long one pull waits for a message while the client
// has credit. A drain request is noticed between pulls: a pull is not cut
// short, since a JetStream pull request cancelled on the client side may
// still take a message (which would then stay locked, undelivered, for
// the lock duration), so pulls are short instead.
const receivePoll = 250 * time.Millisecond

// receiverLink serves a client's receiver: peek-lock unless the client
// asked for pre-settled deliveries (receive-and-delete).
func (a *amqpHandler) receiverLink(ctx context.Context, c *amqp.Conn, at *wire.Attach, e amqpEntity) (amqp.Link, error) {
	if !e.receivable() {
		return nil, wire.Errorf("amqp:not-allowed", "'%s' is a topic: receive from one of its subscriptions, %s/Subscriptions/{subscription}.", e.path(), e.path())
	}
	if at.Source != nil {
		if _, ok := at.Source.Filter.Get("com.microsoft:session-filter"); ok {
			return nil, wire.Errorf("amqp:not-allowed", "Session receivers are not supported by Outpost; receive from '%s' without a session.", e.path())
		}
	}
	claim, err := a.authorize(c, e, rightListen, false)
	if err != nil {
		return nil, err
	}
	if st := e.settings().Status; !e.dlq && (st == "Disabled" || st == "ReceiveDisabled") {
		return nil, wire.Errorf("com.microsoft:entity-disabled", "The messaging entity '%s' is %s; set its status to Active.", e.resource(), st)
	}
	if e.transfer {
		return &amqp.Outbound{Claim: claim, Run: runEmpty}, nil
	}
	return &amqp.Outbound{Claim: claim, Run: func(ctx context.Context, s *amqp.Sender) error {
		return a.runReceiver(ctx, c, s, e)
	}}, nil
}

// runEmpty serves a sub-queue that never holds anything: drains complete
// at once.
func runEmpty(ctx context.Context, s *amqp.Sender) error {
	for {
		_, drain, err := s.Wait(ctx)
		if err != nil {
			return nil
		}
		if drain {
			s.Drained()
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(receivePoll):
		}
	}
}

// runReceiver sends messages of e while the client gives credit. Each
// pull reads the entity as configured now: a deleted or disabled entity
// detaches the link (a pull on a deleted one would make its consumer
// again).
func (a *amqpHandler) runReceiver(ctx context.Context, c *amqp.Conn, s *amqp.Sender, e amqpEntity) error {
	mode := peekLock
	if s.PreSettled() {
		mode = receiveAndDelete
	}
	segs := addressSegments(e.path())
	for {
		_, drain, err := s.Wait(ctx)
		if err != nil {
			return nil
		}
		view, err := a.namespace(ctx, c)
		if err == nil {
			e, err = a.resolve(view, segs)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if st := e.settings().Status; !e.dlq && (st == "Disabled" || st == "ReceiveDisabled") {
			return wire.Errorf("com.microsoft:entity-disabled", "The messaging entity '%s' is %s; set its status to Active.", e.resource(), st)
		}
		t := e.target()
		wait := receivePoll
		if drain {
			wait = 0
		}
		m, err := a.h.broker.receive(ctx, t, mode, wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.h.log.Warn("servicebus: AMQP receive", "entity", t.key(), "err", err)
			// detach-forced: the SDKs attach again.
			return wire.Errorf("amqp:link:detach-forced", "Receiving from '%s' failed; attach again. (%v)", e.path(), err)
		}
		if m == nil {
			if drain {
				s.Drained()
			}
			continue
		}
		if err := a.deliver(ctx, s, t, m, mode); err != nil {
			return nil
		}
	}
}

// deliver sends one received message: pre-settled in receive-and-delete,
// else under its lock, whose token is the delivery tag and the
// x-opt-lock-token annotation.
func (a *amqpHandler) deliver(ctx context.Context, s *amqp.Sender, t target, m *Message, mode receiveMode) error {
	d := delivery{}
	opts := amqp.SendOptions{Settled: mode == receiveAndDelete}
	if mode == peekLock {
		u, err := uuid.Parse(m.LockToken)
		if err != nil {
			a.h.broker.releaseToken(t.key(), m.LockToken)
			return err
		}
		d.lockToken, d.lockedUntil = wire.UUID(u), m.LockedUntil
		opts.Tag = lockTokenTag(d.lockToken)
		entity, token := t.key(), m.LockToken
		opts.OnOutcome = func(state any) any { return a.settleOutcome(entity, token, state) }
	}
	payload, err := encodeReceived(m, d)
	if err == nil {
		err = s.Send(ctx, payload, opts)
	}
	if err != nil {
		if mode == peekLock {
			a.h.broker.releaseToken(t.key(), m.LockToken)
		} else {
			a.h.log.Warn("servicebus: a received-and-deleted message was not delivered", "entity", t.key(), "sequence", m.SequenceNumber, "err", err)
		}
		return err
	}
	return nil
}

// settleOutcome applies a client's outcome for a peek-locked delivery and
// returns the state to confirm it with (nil: the client's own). It runs
// on the connection's reader, so it only decides in memory and leaves
// JetStream's part to the broker (settleNow).
//
//	accepted                              complete
//	modified{undeliverable-here: false}   abandon (delivery count +1; message-annotations set properties)
//	modified{undeliverable-here: true}    defer (received later by sequence number)
//	rejected{…}                           dead-letter (info: DeadLetterReason, DeadLetterErrorDescription, properties)
//	released                              abandon without counting the delivery
func (a *amqpHandler) settleOutcome(entity, token string, state any) any {
	var disp disposition
	var confirm any
	switch st := state.(type) {
	case *wire.Received:
		return nil // not an outcome
	case *wire.Accepted:
		disp.how = outcomeComplete
	case *wire.Released, nil:
		disp.how = outcomeRelease
	case *wire.Modified:
		disp.how = outcomeAbandon
		if st.UndeliverableHere {
			disp.how = outcomeDefer
		}
		disp.properties = annotationProperties(st.MessageAnnotations)
	case *wire.Rejected:
		disp.how = outcomeDeadLetter
		disp.reason, disp.description = "", ""
		if st.Error != nil {
			disp.properties = map[string]any{}
			for _, kv := range st.Error.Info {
				name, ok := mapKey(kv.Key)
				if !ok || kv.Value == nil {
					continue
				}
				switch name {
				case "DeadLetterReason":
					disp.reason = annotationString(kv.Value)
				case "DeadLetterErrorDescription":
					disp.description = annotationString(kv.Value)
				default:
					disp.properties[name] = kv.Value
				}
			}
			if st.Error.Condition != "com.microsoft:dead-letter" && disp.reason == "" {
				disp.reason, disp.description = string(st.Error.Condition), st.Error.Description
			}
		}
		// A dead-lettered message is confirmed with rejected without an
		// error: an error would fail the client's settlement.
		confirm = &wire.Rejected{}
	default:
		return &wire.Rejected{Error: wire.Errorf("amqp:not-allowed", "The outcome %T is not understood.", state)}
	}
	if err := a.h.broker.settleNow(entity, token, disp); err != nil {
		if errors.Is(err, errLockLost) {
			return &wire.Rejected{Error: lockLostError(token)}
		}
		a.h.log.Warn("servicebus: AMQP settlement", "entity", entity, "err", err)
		return &wire.Rejected{Error: wire.Errorf("amqp:internal-error", "The settlement failed: %v.", err)}
	}
	return confirm
}

func lockLostError(token string) *wire.Error {
	return wire.Errorf("com.microsoft:message-lock-lost",
		"The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue (lock token '%s'). Receive the message again.", token)
}

// annotationProperties are the properties an abandon asks to set (Go's
// and JavaScript's propertiesToModify travel as message-annotations).
func annotationProperties(m wire.Map) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for _, kv := range m {
		if name, ok := mapKey(kv.Key); ok && kv.Value != nil {
			out[name] = kv.Value
		}
	}
	return out
}

func mapKey(k any) (string, bool) {
	switch s := k.(type) {
	case string:
		return s, true
	case wire.Symbol:
		return string(s), true
	}
	return "", false
}
