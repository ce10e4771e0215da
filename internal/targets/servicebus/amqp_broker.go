package servicebus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Broker operations the AMQP surface adds to the REST ones. A link's
// dispositions arrive on the connection's reader, so the settlements they
// cause decide in memory (is the lock still held?) and leave JetStream's
// part to the publish buffer (Ack, Nak) or, when a copy must be stored
// first (dead-letter, an abandon that modifies properties), to a goroutine
// bounded by settleTimeout.

// settleTimeout bounds the JetStream work a settlement starts.
const settleTimeout = 30 * time.Second

// outcome is how a peek-locked message is settled.
type outcome int

const (
	outcomeComplete outcome = iota
	// outcomeAbandon unlocks the message; its delivery count rises.
	outcomeAbandon
	// outcomeRelease unlocks it without counting the delivery.
	outcomeRelease
	outcomeDeadLetter
	// outcomeDefer sets the message aside, to be received by sequence
	// number (defer.go).
	outcomeDefer
)

// disposition is a settlement with its details.
type disposition struct {
	how outcome
	// reason and description of a dead-letter.
	reason, description string
	// properties to set on the message (abandon, dead-letter), as AMQP
	// values.
	properties map[string]any
}

// settleNow settles a peek-locked message without waiting for JetStream:
// the lock is taken at once (errLockLost when it is not held), the
// message acknowledged or given back through the publish buffer, and a
// copy that must be stored first is stored on a goroutine. Safe to call
// on a connection's reader.
func (b *Broker) settleNow(entity, lockToken string, s disposition) error {
	l, err := b.lock(entity, lockToken, true)
	if err != nil {
		return err
	}
	switch {
	case l.deferred != nil:
	case s.how == outcomeComplete:
		if err := l.msg.Ack(); err != nil {
			return fmt.Errorf("servicebus: complete: %w", err)
		}
		b.forgetCounts(l.holderKey())
		return nil
	case s.how == outcomeRelease:
		b.release(l)
		return nil
	case s.how == outcomeAbandon && len(s.properties) == 0:
		if err := l.msg.Nak(); err != nil {
			return fmt.Errorf("servicebus: abandon: %w", err)
		}
		return nil
	case s.how == outcomeDefer:
		// Known as deferred before the client hears so: receiving it by
		// sequence number waits for the copy (receiveDeferred).
		b.startDeferring(l.holderKey())
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		defer cancel()
		if err := b.settleHeld(ctx, l, s); err != nil {
			b.log.Warn("servicebus: settlement", "entity", l.entity, "sequence", l.seq, "err", err)
		}
	}()
	return nil
}

// settleLocked settles a peek-locked message and waits for JetStream
// ($management's update-disposition, which runs on its own goroutine).
func (b *Broker) settleLocked(ctx context.Context, entity, lockToken string, s disposition) error {
	l, err := b.lock(entity, lockToken, true)
	if err != nil {
		return err
	}
	return b.settleHeld(ctx, l, s)
}

// settleHeld settles a message whose lock was taken.
func (b *Broker) settleHeld(ctx context.Context, l *heldLock, s disposition) error {
	if l.deferred != nil {
		return b.settleDeferred(ctx, l, s)
	}
	switch s.how {
	case outcomeDefer:
		return b.deferHeld(ctx, l)
	case outcomeComplete:
		if err := l.msg.DoubleAck(ctx); err != nil {
			return fmt.Errorf("servicebus: complete: %w", err)
		}
		b.forgetCounts(l.holderKey())
		return nil
	case outcomeRelease:
		b.release(l)
		return nil
	case outcomeAbandon:
		if len(s.properties) == 0 {
			if err := l.msg.Nak(); err != nil {
				return fmt.Errorf("servicebus: abandon: %w", err)
			}
			return nil
		}
		return b.restore(ctx, l, s.properties)
	}
	m, _ := decodeMessage(l.msg)
	if err := setProperties(m, s.properties); err != nil {
		_ = l.msg.Nak()
		return err
	}
	return b.deadLetter(ctx, l.t, l.msg, m, s.reason, s.description)
}

// release gives a locked message back without counting the delivery.
func (b *Broker) release(l *heldLock) {
	if l.deferred != nil {
		return // unlocked, it stays deferred
	}
	b.mu.Lock()
	b.uncounted[l.holderKey()]++
	b.mu.Unlock()
	if err := l.msg.Nak(); err != nil {
		b.log.Warn("servicebus: release", "entity", l.entity, "sequence", l.seq, "err", err)
	}
}

// releaseToken releases the message a lock token holds, if it still does
// (a delivery that could not be sent).
func (b *Broker) releaseToken(entity, lockToken string) {
	if l, err := b.lock(entity, lockToken, true); err == nil {
		b.release(l)
	}
}

// restore abandons a message with changed properties: JetStream cannot
// change a stored message, so a changed copy is stored (its delivery count
// carried on) and the original removed. The copy gets a new sequence
// number and goes to the back of the queue.
func (b *Broker) restore(ctx context.Context, l *heldLock, props map[string]any) error {
	m, _ := decodeMessage(l.msg)
	b.mu.Lock()
	m.DeliveryCountBase = m.DeliveryCount - b.uncounted[l.holderKey()]
	b.mu.Unlock()
	if err := setProperties(m, props); err != nil {
		_ = l.msg.Nak()
		return err
	}
	if _, err := b.publishMsg(ctx, l.t, m, false); err != nil {
		_ = l.msg.Nak()
		return err
	}
	if err := l.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("servicebus: remove abandoned original: %w", err)
	}
	b.forgetCounts(l.holderKey())
	return nil
}

// setProperties sets custom properties given as AMQP values.
func setProperties(m *Message, props map[string]any) error {
	for k, v := range props {
		w, tag, ok := propertyWire(v)
		if !ok {
			return fmt.Errorf("servicebus: property %q has the type %T, which a custom property cannot have", k, v)
		}
		m.setUser(k, w)
		if tag != "" {
			if m.Types == nil {
				m.Types = map[string]string{}
			}
			m.Types[k] = tag
		}
	}
	return nil
}

// peek returns up to n messages of t from sequence number from on,
// without locking them (locked ones included, as Service Bus peeks).
func (b *Broker) peek(ctx context.Context, t target, from uint64, n int) ([]*Message, error) {
	stream, err := b.bus.JetStream().Stream(ctx, b.bus.Stream(streamName(t.namespace)))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("servicebus: stream for %s: %w", t.namespace, err)
	}
	subject := b.bus.Subject(t.logicalSubject())
	seq := max(from, 1)
	var out []*Message
	for len(out) < n {
		raw, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("servicebus: peek %s: %w", t.key(), err)
		}
		m := decodeStored(raw.Header, raw.Data)
		m.SequenceNumber = raw.Sequence
		if m.EnqueuedSequenceNumber == 0 {
			m.EnqueuedSequenceNumber = raw.Sequence
		}
		out = append(out, m)
		seq = raw.Sequence + 1
	}
	return out, nil
}
