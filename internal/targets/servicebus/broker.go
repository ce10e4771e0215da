package servicebus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
)

// Broker keeps Service Bus messages in JetStream: one work-queue stream
// per namespace ("sb-{namespace}"), two subjects per queue or subscription
// (active messages and the dead-letter queue), and a durable pull consumer
// on each whose AckWait is the entity's lock duration. A peek-lock holds the
// jetstream.Msg in memory under a lock token.
//
// Lock invariant: mu guards consumers and locks only; no JetStream call is
// made while it is held.
type Broker struct {
	bus *bus.Bus
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	consumers map[string]jetstream.Consumer // durable name → consumer
	locks     map[string]*heldLock          // lock token → message
	// holders is the token holding each message (entity and sequence): a
	// new delivery revokes the older lock at once — JetStream's AckWait
	// started before this node set the lock's expiry.
	holders map[string]string
	// uncounted is, per message (entity and sequence), how many of
	// JetStream's deliveries do not count: locks released (AMQP released
	// outcome, a delivery that never reached the client) give the message
	// back without raising its delivery count, which JetStream cannot undo.
	uncounted map[string]int
	// scheduling is, per namespace ensured by this process, whether its
	// stream takes message schedules.
	scheduling map[string]bool
	// deferredDeliveries counts, per deferred message (entity and
	// sequence), its deliveries since it was deferred (defer.go).
	deferredDeliveries map[string]int
	// deferring holds, per message being set aside (entity and
	// sequence), a channel closed when its deferred copy is stored.
	deferring map[string]chan struct{}
}

type heldLock struct {
	msg jetstream.Msg // nil for a deferred message
	// deferred is the deferred message held (received by sequence number).
	deferred *deferredMsg
	t        target // the (sub-)queue it came from
	entity   string // t.key()
	seq      uint64
	duration time.Duration
	until    time.Time
}

// NewBroker returns a broker on b.
func NewBroker(b *bus.Bus, log *slog.Logger, now func() time.Time) *Broker {
	if now == nil {
		now = time.Now
	}
	return &Broker{bus: b, log: log, now: now, consumers: map[string]jetstream.Consumer{}, locks: map[string]*heldLock{},
		holders: map[string]string{}, uncounted: map[string]int{}, scheduling: map[string]bool{}, deferredDeliveries: map[string]int{},
		deferring: map[string]chan struct{}{}}
}

// target is one (sub-)queue messages are received from.
type target struct {
	namespace string
	// path is the entity path as Service Bus names it: "q1",
	// "t1/subscriptions/s1"; dlq selects its $DeadLetterQueue.
	path     string
	dlq      bool
	settings sbresource.Settings
}

func queueTarget(ns, queue string, s sbresource.Settings) target {
	return target{namespace: ns, path: queue, settings: s}
}

func subscriptionTarget(ns, topic, sub string, s sbresource.Settings) target {
	return target{namespace: ns, path: topic + "/subscriptions/" + sub, settings: s}
}

func entityTarget(e sbresource.Entity) target {
	if e.Queue != "" {
		return queueTarget(e.Namespace, e.Queue, e.Settings)
	}
	return subscriptionTarget(e.Namespace, e.Topic, e.Subscription, e.Settings)
}

// token is a short, subject- and file-name-safe id of the entity path
// (names may be 260 characters; durable names become directory names).
func (t target) token() string {
	sum := sha256.Sum256([]byte(strings.ToLower(t.path)))
	return hex.EncodeToString(sum[:12])
}

func (t target) key() string {
	k := strings.ToLower(t.namespace) + "/" + strings.ToLower(t.path)
	if t.dlq {
		k += "/$deadletterqueue"
	}
	return k
}

func (t target) deadLetter() target { d := t; d.dlq = true; return d }

func streamName(ns string) string { return "sb-" + strings.ToLower(ns) }

func (t target) kind() string {
	if t.dlq {
		return "d"
	}
	return "m"
}

func (t target) logicalSubject() string {
	return "sb." + strings.ToLower(t.namespace) + "." + t.token() + "." + t.kind()
}

func (t target) durable() string { return t.kind() + t.token() }

func (t target) consumerKey() string { return strings.ToLower(t.namespace) + "/" + t.durable() }

// EnsureNamespace creates the namespace's stream.
func (b *Broker) EnsureNamespace(ctx context.Context, ns string) error {
	stream, err := b.bus.EnsureStream(ctx, jetstream.StreamConfig{
		Name:      streamName(ns),
		Subjects:  []string{"sb." + strings.ToLower(ns) + ".>"},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy,
		// Duplicate detection: one window for the stream, the longest an
		// entity may ask for; ids are scoped per entity (see publish).
		Duplicates: 10 * time.Minute,
		// Scheduled messages (schedule.go); schedules need roll-ups.
		AllowMsgSchedules: true,
		AllowRollup:       true,
	})
	if err != nil {
		return fmt.Errorf("servicebus: ensure stream for %s: %w", ns, err)
	}
	// A NATS server older than 2.12 ignores the setting it does not know.
	supported := stream.CachedInfo() != nil && stream.CachedInfo().Config.AllowMsgSchedules
	b.mu.Lock()
	b.scheduling[strings.ToLower(ns)] = supported
	b.mu.Unlock()
	return nil
}

// RemoveNamespace deletes the namespace's stream and forgets its consumers.
func (b *Broker) RemoveNamespace(ctx context.Context, ns string) error {
	b.mu.Lock()
	for k := range b.consumers {
		if strings.HasPrefix(k, strings.ToLower(ns)+"/") {
			delete(b.consumers, k)
		}
	}
	delete(b.scheduling, strings.ToLower(ns))
	b.mu.Unlock()
	err := b.bus.JetStream().DeleteStream(ctx, b.bus.Stream(streamName(ns)))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("servicebus: delete stream for %s: %w", ns, err)
	}
	return nil
}

// EnsureEntity creates or updates the consumers of a queue or subscription
// and its dead-letter queue.
func (b *Broker) EnsureEntity(ctx context.Context, e sbresource.Entity) error {
	t := entityTarget(e)
	for _, x := range []target{t, t.deadLetter()} {
		if _, err := b.createConsumer(ctx, x); err != nil {
			return err
		}
	}
	return nil
}

// RemoveEntity deletes the consumers and messages of a queue or subscription.
func (b *Broker) RemoveEntity(ctx context.Context, e sbresource.Entity) error {
	t := entityTarget(e)
	js := b.bus.JetStream()
	stream, err := js.Stream(ctx, b.bus.Stream(streamName(t.namespace)))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("servicebus: stream for %s: %w", t.namespace, err)
	}
	for _, x := range []target{t, t.deadLetter()} {
		b.mu.Lock()
		delete(b.consumers, x.consumerKey())
		b.mu.Unlock()
		if err := stream.DeleteConsumer(ctx, x.durable()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("servicebus: delete consumer of %s: %w", x.key(), err)
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(b.bus.Subject(x.logicalSubject()))); err != nil {
			return fmt.Errorf("servicebus: purge %s: %w", x.key(), err)
		}
	}
	for _, subj := range []string{t.scheduleSubject(">"), t.deferredSubject(">"), t.deadLetter().deferredSubject(">")} {
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(b.bus.Subject(subj))); err != nil {
			return fmt.Errorf("servicebus: purge %s: %w", subj, err)
		}
	}
	return nil
}

// Count reports active and dead-lettered messages of a queue or subscription.
func (b *Broker) Count(ctx context.Context, e sbresource.Entity) (int64, int64, error) {
	t := entityTarget(e)
	stream, err := b.bus.JetStream().Stream(ctx, b.bus.Stream(streamName(t.namespace)))
	if err != nil {
		return 0, 0, fmt.Errorf("servicebus: stream for %s: %w", t.namespace, err)
	}
	main, dead := b.bus.Subject(t.logicalSubject()), b.bus.Subject(t.deadLetter().logicalSubject())
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(b.bus.Subject("sb", strings.ToLower(t.namespace), t.token(), "*")))
	if err != nil {
		return 0, 0, fmt.Errorf("servicebus: stream info for %s: %w", t.namespace, err)
	}
	return int64(info.State.Subjects[main]), int64(info.State.Subjects[dead]), nil
}

// defaultLockDuration is Service Bus's default lock duration.
const defaultLockDuration = time.Minute

func (b *Broker) createConsumer(ctx context.Context, t target) (jetstream.Consumer, error) {
	lock := t.settings.LockDuration
	if lock <= 0 {
		lock = defaultLockDuration
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       t.durable(),
		FilterSubject: b.bus.Subject(t.logicalSubject()),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       lock,
		// Unlimited: the broker itself moves a message to the dead-letter
		// queue once its delivery count passes maxDeliveryCount, so a
		// message whose last lock expired is never stranded undelivered.
		MaxDeliver:    -1,
		MaxAckPending: 10000,
	}
	stream := b.bus.Stream(streamName(t.namespace))
	c, err := b.bus.JetStream().CreateOrUpdateConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := b.EnsureNamespace(ctx, t.namespace); err != nil {
			return nil, err
		}
		c, err = b.bus.JetStream().CreateOrUpdateConsumer(ctx, stream, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("servicebus: consumer for %s: %w", t.key(), err)
	}
	b.mu.Lock()
	b.consumers[t.consumerKey()] = c
	b.mu.Unlock()
	return c, nil
}

func (b *Broker) consumer(ctx context.Context, t target) (jetstream.Consumer, error) {
	b.mu.Lock()
	c, ok := b.consumers[t.consumerKey()]
	b.mu.Unlock()
	if ok {
		return c, nil
	}
	return b.createConsumer(ctx, t)
}

// publish stores one message on a (sub-)queue and returns its sequence
// number once JetStream has it.
func (b *Broker) publish(ctx context.Context, t target, m *Message) (uint64, error) {
	return b.publishMsg(ctx, t, m, true)
}

// publishMsg is publish; dedupe false stores a message again (an abandon
// that modified it) without duplicate detection dropping it.
func (b *Broker) publishMsg(ctx context.Context, t target, m *Message, dedupe bool) (uint64, error) {
	hdr := m.header()
	if dedupe && t.settings.RequiresDuplicateDetection && m.Props.MessageID != "" && !t.dlq {
		hdr.Set(jetstream.MsgIDHeader, t.token()+":"+m.Props.MessageID)
	}
	msg := natsMsg(b.bus.Subject(t.logicalSubject()), m.Body, hdr)
	ack, err := b.bus.JetStream().PublishMsg(ctx, msg)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// The stream was not made (a namespace provisioned before a wipe of
		// the bus): make it and try once more.
		if err := b.EnsureNamespace(ctx, t.namespace); err != nil {
			return 0, err
		}
		ack, err = b.bus.JetStream().PublishMsg(ctx, msg)
	}
	if err != nil {
		return 0, fmt.Errorf("servicebus: publish to %s: %w", t.key(), err)
	}
	return ack.Sequence, nil
}

// receiveMode is how a message is taken.
type receiveMode int

const (
	receiveAndDelete receiveMode = iota
	peekLock
)

// receive takes the next live message of t, waiting up to wait. It returns
// nil when none arrived. On the way it dead-letters (or drops) expired
// messages and dead-letters those delivered more than maxDeliveryCount
// times, as Service Bus does when a receiver pulls.
func (b *Broker) receive(ctx context.Context, t target, mode receiveMode, wait time.Duration) (*Message, error) {
	c, err := b.consumer(ctx, t)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left < 10*time.Millisecond {
			left = 10 * time.Millisecond // one immediate look even with timeout=0
		}
		fctx, cancel := context.WithTimeout(ctx, left)
		batch, err := c.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			timedOut := fctx.Err() != nil
			cancel()
			if ctx.Err() != nil {
				return nil, nil
			}
			// A pull that ran out of its (possibly very short) wait is "no
			// message yet", not a failure: under load the request itself may
			// outlast a 10 ms window.
			if timedOut || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				if time.Now().After(deadline) {
					return nil, nil
				}
				continue
			}
			return nil, fmt.Errorf("servicebus: fetch from %s: %w", t.key(), err)
		}
		var got jetstream.Msg
		for m := range batch.Messages() {
			got = m
		}
		cancel()
		if got == nil {
			if ctx.Err() != nil || time.Now().After(deadline) {
				return nil, nil
			}
			continue
		}
		m, _ := decodeMessage(got)
		now := b.now()
		key := holderKey(t.key(), m.SequenceNumber)
		b.mu.Lock()
		m.DeliveryCount -= b.uncounted[key]
		b.mu.Unlock()
		if !t.dlq {
			if !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt) {
				if t.settings.DeadLetterOnExpiration {
					err = b.deadLetter(ctx, t, got, m, "TTLExpiredException", "The message expired and was dead lettered.")
				} else {
					err = got.DoubleAck(ctx)
					b.forgetCounts(key)
				}
				if err != nil {
					b.log.Warn("servicebus: expire message", "entity", t.key(), "err", err)
				}
				continue
			}
			if m.DeliveryCount > t.settings.MaxDeliveryCount {
				err := b.deadLetter(ctx, t, got, m, "MaxDeliveryCountExceeded",
					fmt.Sprintf("Message could not be consumed after %d delivery attempts.", t.settings.MaxDeliveryCount))
				if err != nil {
					b.log.Warn("servicebus: dead-letter message", "entity", t.key(), "err", err)
				}
				continue
			}
		}
		if ctx.Err() != nil {
			// The caller is gone: give the message back at once, without
			// counting a delivery nobody saw.
			b.mu.Lock()
			b.uncounted[key]++
			b.mu.Unlock()
			_ = got.Nak()
			return nil, nil
		}
		if mode == receiveAndDelete {
			if err := got.DoubleAck(ctx); err != nil {
				return nil, fmt.Errorf("servicebus: delete received message from %s: %w", t.key(), err)
			}
			b.forgetCounts(key)
			return m, nil
		}
		lock := t.settings.LockDuration
		if lock <= 0 {
			lock = defaultLockDuration
		}
		m.LockToken = uuid.NewString()
		m.LockedUntil = now.Add(lock)
		b.mu.Lock()
		b.holdLock(m.LockToken, &heldLock{msg: got, t: t, entity: t.key(), seq: m.SequenceNumber, duration: lock, until: m.LockedUntil})
		b.mu.Unlock()
		return m, nil
	}
}

// deadLetter moves a message to t's dead-letter queue: stored there first,
// then removed, so a crash in between duplicates rather than loses it.
func (b *Broker) deadLetter(ctx context.Context, t target, msg jetstream.Msg, m *Message, reason, description string) error {
	m.setUser("DeadLetterReason", strconv.Quote(reason))
	m.setUser("DeadLetterErrorDescription", strconv.Quote(description))
	if _, err := b.publish(ctx, t.deadLetter(), m); err != nil {
		_ = msg.Nak()
		return err
	}
	if err := msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("servicebus: remove dead-lettered message: %w", err)
	}
	b.forgetCounts(holderKey(t.key(), m.SequenceNumber))
	return nil
}

// errLockLost is returned for an unknown or expired lock token.
var errLockLost = errors.New("servicebus: the lock token is unknown or the lock expired")

type settlement int

const (
	settleComplete settlement = iota
	settleAbandon
	settleRenew
)

// settle completes, abandons or renews a peek-locked message of entity
// (a target key). It returns the new lock expiry for a renewal.
func (b *Broker) settle(ctx context.Context, entity, lockToken string, how settlement) (time.Time, error) {
	l, err := b.lock(entity, lockToken, how != settleRenew)
	if err != nil {
		return time.Time{}, err
	}
	now := b.now()
	if l.deferred != nil {
		switch how {
		case settleRenew:
			b.mu.Lock()
			l.until = now.Add(l.duration)
			b.mu.Unlock()
			return l.until, nil
		case settleComplete:
			return time.Time{}, b.settleDeferred(ctx, l, disposition{how: outcomeComplete})
		}
		return time.Time{}, nil // abandoned: it stays deferred
	}
	switch how {
	case settleComplete:
		if err := l.msg.DoubleAck(ctx); err != nil {
			return time.Time{}, errLockLost
		}
		b.forgetCounts(l.holderKey())
	case settleAbandon:
		if err := l.msg.Nak(); err != nil {
			return time.Time{}, errLockLost
		}
	case settleRenew:
		if err := l.msg.InProgress(); err != nil {
			return time.Time{}, errLockLost
		}
		b.mu.Lock()
		l.until = now.Add(l.duration)
		b.mu.Unlock()
		return l.until, nil
	}
	return time.Time{}, nil
}

// sweepLocks forgets expired locks (JetStream has already made their
// messages available again).
func (b *Broker) sweepLocks() int {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for k, l := range b.locks {
		if !now.Before(l.until) {
			b.forgetLock(k, l)
			n++
		}
	}
	return n
}

// holdLock records a new lock; the message's older lock, if any, is
// revoked. b.mu must be held.
func (b *Broker) holdLock(token string, l *heldLock) {
	key := l.holderKey()
	if old, ok := b.holders[key]; ok {
		delete(b.locks, old)
	}
	b.holders[key] = token
	b.locks[token] = l
}

// forgetLock drops a lock. b.mu must be held.
func (b *Broker) forgetLock(token string, l *heldLock) {
	delete(b.locks, token)
	if b.holders[l.holderKey()] == token {
		delete(b.holders, l.holderKey())
	}
}

func (l *heldLock) holderKey() string { return holderKey(l.entity, l.seq) }

func holderKey(entity string, seq uint64) string { return entity + "/" + strconv.FormatUint(seq, 10) }

// lock finds the live lock lockToken holds on a message of entity (a
// target key); take removes it, as every settlement but a renewal does.
func (b *Broker) lock(entity, lockToken string, take bool) (*heldLock, error) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.locks[lockToken]
	if !ok || l.entity != entity {
		return nil, errLockLost
	}
	if !now.Before(l.until) {
		b.forgetLock(lockToken, l)
		return nil, errLockLost
	}
	if take {
		b.forgetLock(lockToken, l)
	}
	return l, nil
}

// forgetCounts drops the delivery-count bookkeeping of a message that is
// gone from its (sub-)queue.
func (b *Broker) forgetCounts(key string) {
	b.mu.Lock()
	delete(b.uncounted, key)
	b.mu.Unlock()
}

func natsMsg(subject string, data []byte, hdr nats.Header) *nats.Msg {
	return &nats.Msg{Subject: subject, Data: data, Header: hdr}
}
