package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// This file reads one partition of the built-in endpoint the way Event
// Hubs receivers do (AMQP): from a stream sequence or a time, live.

// Start positions a partition reader.
type Start struct {
	// Policy is DeliverAll, DeliverNew, DeliverByStartSequence or
	// DeliverByStartTime.
	Policy jetstream.DeliverPolicy
	Seq    uint64
	Time   time.Time
}

// ReadPartition hands the built-in endpoint messages of one partition to
// fn, in order, until ctx ends or fn fails. Nothing is consumed.
func (s *Streams) ReadPartition(ctx context.Context, hub string, partition int, start Start, fn func(Message) error) error {
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:  start.Policy,
		FilterSubjects: []string{s.physicalSubject(hub, partition)},
	}
	switch start.Policy {
	case jetstream.DeliverByStartSequencePolicy:
		cfg.OptStartSeq = max(start.Seq, 1)
	case jetstream.DeliverByStartTimePolicy:
		t := start.Time
		cfg.OptStartTime = &t
	}
	return s.readLoop(ctx, hub, cfg, fn)
}

// PartitionState is what a partition holds: the stream sequences of its
// first and last messages and when the last was stored (Empty when none).
type PartitionState struct {
	First, Last uint64
	LastTime    time.Time
	Empty       bool
}

// PartitionState reads a partition's first and last messages.
func (s *Streams) PartitionState(ctx context.Context, hub string, partition int) (PartitionState, error) {
	st := PartitionState{Empty: true}
	stream, err := s.bus.JetStream().Stream(ctx, s.bus.Stream(streamName(hub)))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("telemetry: partition %d of %s: %w", partition, hub, err)
	}
	subj := s.physicalSubject(hub, partition)
	last, err := stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		st.First = stream.CachedInfo().State.LastSeq + 1
		st.Last = st.First - 1
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("telemetry: partition %d of %s: %w", partition, hub, err)
	}
	first, err := stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
	if err != nil {
		return st, fmt.Errorf("telemetry: partition %d of %s: %w", partition, hub, err)
	}
	// The enqueued time readers see is the one stamped when it arrived.
	lastTime := last.Time.UTC()
	if t, err := time.Parse(time.RFC3339Nano, last.Header.Get(PropEnqueuedTime)); err == nil {
		lastTime = t.UTC()
	}
	return PartitionState{First: first.Sequence, Last: last.Sequence, LastTime: lastTime}, nil
}

// HubFromBuiltInHost is the hub name in a built-in endpoint host
// iothub-ns-{hub}.servicebus.{suffix} ("" for other hosts).
func HubFromBuiltInHost(host, dnsSuffix string) string {
	h := strings.ToLower(host)
	rest, ok := strings.CutSuffix(h, ".servicebus."+dnsSuffix)
	if !ok {
		return ""
	}
	name, ok := strings.CutPrefix(rest, "iothub-ns-")
	if !ok || strings.Contains(name, ".") {
		return ""
	}
	return name
}
