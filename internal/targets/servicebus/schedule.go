package servicebus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Scheduled messages wait in the namespace's stream as JetStream message
// schedules (nats-server 2.12 and later): each copy (one for a queue, one
// per matching subscription of a topic) is stored on
// "sb.{ns}.{entity}.s.{group}" with a one-time schedule that JetStream
// fires into the (sub-)queue's subject at the scheduled time, in whole
// seconds rounded up. group names the copies of one scheduled message, so
// cancelling the sequence number the sender was given cancels them all.
// The enqueued copy gets a sequence number of its own; it carries the
// scheduled time as its enqueued time.

var (
	// errSchedulingUnsupported: the NATS server cannot schedule messages.
	errSchedulingUnsupported = errors.New("servicebus: the NATS server does not support message schedules (nats-server 2.12 or later does)")
	// errNotScheduled: no scheduled message has the sequence number (it
	// was enqueued, cancelled, or never existed).
	errNotScheduled = errors.New("servicebus: no scheduled message has that sequence number")
)

func (t target) scheduleSubject(group string) string {
	return "sb." + strings.ToLower(t.namespace) + "." + t.token() + ".s." + group
}

// scheduleAt is the schedule JetStream fires at: never early.
func scheduleAt(at time.Time) string {
	if t := at.Truncate(time.Second); t.Before(at) {
		at = t.Add(time.Second)
	}
	return "@at " + at.UTC().Format(time.RFC3339)
}

// canSchedule reports whether the namespace's stream takes schedules,
// ensuring it once per process (streams made before schedules were
// enabled are updated).
func (b *Broker) canSchedule(ctx context.Context, ns string) error {
	b.mu.Lock()
	ok, known := b.scheduling[strings.ToLower(ns)]
	b.mu.Unlock()
	if !known {
		if err := b.EnsureNamespace(ctx, ns); err != nil {
			return err
		}
		b.mu.Lock()
		ok = b.scheduling[strings.ToLower(ns)]
		b.mu.Unlock()
	}
	if !ok {
		return errSchedulingUnsupported
	}
	return nil
}

// schedule stores a stamped message to be enqueued on t at at and returns
// the schedule's sequence number.
func (b *Broker) schedule(ctx context.Context, t target, m *Message, at time.Time, group string) (uint64, error) {
	if err := b.canSchedule(ctx, t.namespace); err != nil {
		return 0, err
	}
	m.Props.ScheduledEnqueueTimeUtc = at.UTC().Format(time.RFC1123)
	hdr := m.header()
	if t.settings.RequiresDuplicateDetection && m.Props.MessageID != "" {
		hdr.Set(jetstream.MsgIDHeader, t.token()+":"+m.Props.MessageID)
	}
	hdr.Set(jetstream.ScheduleHeader, scheduleAt(at))
	hdr.Set(jetstream.ScheduleTargetHeader, b.bus.Subject(t.logicalSubject()))
	ack, err := b.bus.JetStream().PublishMsg(ctx, natsMsg(b.bus.Subject(t.scheduleSubject(group)), m.Body, hdr))
	if err != nil {
		return 0, fmt.Errorf("servicebus: schedule on %s: %w", t.key(), err)
	}
	return ack.Sequence, nil
}

// cancelScheduled removes every copy of the scheduled message whose
// sequence number is seq, if that message was scheduled on one of the
// (sub-)queues of targets (the queue, or a topic's subscriptions).
func (b *Broker) cancelScheduled(ctx context.Context, ns string, seq uint64, targets []target) error {
	stream, err := b.bus.JetStream().Stream(ctx, b.bus.Stream(streamName(ns)))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return errNotScheduled
	}
	if err != nil {
		return fmt.Errorf("servicebus: stream for %s: %w", ns, err)
	}
	raw, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return errNotScheduled
	}
	if err != nil {
		return fmt.Errorf("servicebus: read scheduled message %d: %w", seq, err)
	}
	parts := strings.Split(strings.TrimPrefix(raw.Subject, b.bus.Subject("sb", strings.ToLower(ns))+"."), ".")
	if len(parts) != 3 || parts[1] != "s" || !slices.ContainsFunc(targets, func(t target) bool { return t.token() == parts[0] }) {
		return errNotScheduled
	}
	copies := b.bus.Subject("sb", strings.ToLower(ns), "*", "s", parts[2])
	for next := uint64(1); ; {
		m, err := stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(copies))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("servicebus: find scheduled copies: %w", err)
		}
		if err := stream.DeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("servicebus: cancel scheduled message %d: %w", m.Sequence, err)
		}
		next = m.Sequence + 1
	}
}
