package servicebus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// Deferred messages: a receiver that defers a locked message sets it
// aside, to be received later only by its sequence number. The broker
// stores a copy on "sb.{ns}.{entity}.{m|d}f.{sequence}" — a subject no
// consumer reads — and removes the original, so the sequence number the
// receiver was given finds the copy. A deferred message received by
// sequence number is locked in memory like any other (no JetStream
// consumer holds it), and completing or dead-lettering it deletes the copy;
// abandoning it leaves it deferred.

// errNotDeferred: no deferred message has the sequence number.
var errNotDeferred = errors.New("servicebus: no deferred message has that sequence number")

// deferredMsg is a deferred message held under a lock.
type deferredMsg struct {
	streamSeq uint64 // the copy's sequence in the stream
	m         *Message
}

func (t target) deferredSubject(seq string) string {
	return "sb." + strings.ToLower(t.namespace) + "." + t.token() + "." + t.kind() + "f." + seq
}

// deferHeld sets a locked message aside: a copy on the deferred subject
// (its delivery count carried on), then the original removed.
func (b *Broker) deferHeld(ctx context.Context, l *heldLock) error {
	defer b.doneDeferring(l.holderKey())
	if l.deferred != nil {
		return nil // deferred already: unlocked, it stays deferred
	}
	m, _ := decodeMessage(l.msg)
	b.mu.Lock()
	m.DeliveryCountBase = m.DeliveryCount - b.uncounted[l.holderKey()]
	b.mu.Unlock()
	m.EnqueuedSequenceNumber = l.seq
	hdr := m.header()
	if _, err := b.bus.JetStream().PublishMsg(ctx, natsMsg(b.bus.Subject(l.t.deferredSubject(strconv.FormatUint(l.seq, 10))), m.Body, hdr)); err != nil {
		_ = l.msg.Nak()
		return fmt.Errorf("servicebus: defer message %d of %s: %w", l.seq, l.entity, err)
	}
	if err := l.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("servicebus: remove deferred original: %w", err)
	}
	b.forgetCounts(l.holderKey())
	return nil
}

// receiveDeferred reads the deferred message with sequence number seq:
// locked under a new lock token (peek-lock) or removed
// (receive-and-delete).
func (b *Broker) receiveDeferred(ctx context.Context, t target, seq uint64, mode receiveMode) (*Message, error) {
	stream, err := b.bus.JetStream().Stream(ctx, b.bus.Stream(streamName(t.namespace)))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, errNotDeferred
	}
	if err != nil {
		return nil, fmt.Errorf("servicebus: stream for %s: %w", t.namespace, err)
	}
	key := holderKey(t.key(), seq)
	subject := b.bus.Subject(t.deferredSubject(strconv.FormatUint(seq, 10)))
	raw, err := stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Deferred a moment ago: wait for the copy.
		b.mu.Lock()
		pending := b.deferring[key]
		b.mu.Unlock()
		if pending == nil {
			return nil, errNotDeferred
		}
		select {
		case <-pending:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		raw, err = stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subject))
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, errNotDeferred
	}
	if err != nil {
		return nil, fmt.Errorf("servicebus: read deferred message %d of %s: %w", seq, t.key(), err)
	}
	m := decodeStored(raw.Header, raw.Data)
	m.SequenceNumber, m.Deferred = seq, true
	if m.EnqueuedSequenceNumber == 0 {
		m.EnqueuedSequenceNumber = seq
	}
	b.mu.Lock()
	b.deferredDeliveries[key]++
	m.DeliveryCount = m.DeliveryCountBase + b.deferredDeliveries[key]
	b.mu.Unlock()
	if mode == receiveAndDelete {
		if err := stream.DeleteMsg(ctx, raw.Sequence); err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return nil, errNotDeferred
			}
			return nil, fmt.Errorf("servicebus: delete deferred message %d of %s: %w", seq, t.key(), err)
		}
		b.forgetDeferred(key)
		return m, nil
	}
	lock := t.settings.LockDuration
	if lock <= 0 {
		lock = defaultLockDuration
	}
	m.LockToken = uuid.NewString()
	m.LockedUntil = b.now().Add(lock)
	b.mu.Lock()
	b.holdLock(m.LockToken, &heldLock{t: t, entity: t.key(), seq: seq, duration: lock, until: m.LockedUntil,
		deferred: &deferredMsg{streamSeq: raw.Sequence, m: m}})
	b.mu.Unlock()
	return m, nil
}

// settleDeferred settles a deferred message whose lock was taken.
func (b *Broker) settleDeferred(ctx context.Context, l *heldLock, s disposition) error {
	d := l.deferred
	switch s.how {
	case outcomeRelease, outcomeDefer:
		return nil
	case outcomeAbandon:
		if len(s.properties) == 0 {
			return nil
		}
		m := *d.m
		m.User, m.Types = cloneMap(d.m.User), cloneMap(d.m.Types)
		if err := setProperties(&m, s.properties); err != nil {
			return err
		}
		m.DeliveryCount = 0
		if _, err := b.bus.JetStream().PublishMsg(ctx, natsMsg(b.bus.Subject(l.t.deferredSubject(strconv.FormatUint(l.seq, 10))), m.Body, m.header())); err != nil {
			return fmt.Errorf("servicebus: update deferred message: %w", err)
		}
	case outcomeDeadLetter:
		m := *d.m
		m.User, m.Types = cloneMap(d.m.User), cloneMap(d.m.Types)
		if err := setProperties(&m, s.properties); err != nil {
			return err
		}
		m.setUser("DeadLetterReason", strconv.Quote(s.reason))
		m.setUser("DeadLetterErrorDescription", strconv.Quote(s.description))
		if _, err := b.publish(ctx, l.t.deadLetter(), &m); err != nil {
			return err
		}
	}
	stream, err := b.bus.JetStream().Stream(ctx, b.bus.Stream(streamName(l.t.namespace)))
	if err != nil {
		return fmt.Errorf("servicebus: stream for %s: %w", l.t.namespace, err)
	}
	if err := stream.DeleteMsg(ctx, d.streamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("servicebus: remove deferred message %d of %s: %w", l.seq, l.entity, err)
	}
	if s.how != outcomeAbandon {
		b.forgetDeferred(l.holderKey())
	}
	return nil
}

// startDeferring marks a message as being set aside.
func (b *Broker) startDeferring(key string) {
	b.mu.Lock()
	if b.deferring[key] == nil {
		b.deferring[key] = make(chan struct{})
	}
	b.mu.Unlock()
}

// doneDeferring wakes receivers waiting for a deferred copy.
func (b *Broker) doneDeferring(key string) {
	b.mu.Lock()
	if ch := b.deferring[key]; ch != nil {
		close(ch)
		delete(b.deferring, key)
	}
	b.mu.Unlock()
}

func (b *Broker) forgetDeferred(key string) {
	b.mu.Lock()
	delete(b.deferredDeliveries, key)
	b.mu.Unlock()
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
