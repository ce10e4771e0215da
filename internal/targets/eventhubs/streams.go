package eventhubs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
)

// Streams keeps event hub partitions on JetStream: one file-backed stream
// per partition, so the stream sequence IS the partition's sequence number
// (JetStream numbers a stream, not a subject; one stream per event hub
// would give sequence numbers with gaps). Event Hubs numbers from 0,
// JetStream from 1: sequenceNumber = stream sequence − 1. The offset is the
// sequence number in decimal (clients treat offsets as opaque strings).
// MaxAge is the event hub's retention. It implements ehresource.Runtime.
type Streams struct {
	bus *bus.Bus
	// js is a JetStream context of our own on the bus connection: sends
	// publish asynchronously, and its pending window (maxPending) bounds
	// events in flight across all requests rather than per call.
	js jetstream.JetStream
}

// Async publishing limits: enough in flight for many concurrent 500-event
// batches; an ack that takes longer than ackTimeout fails the request.
const (
	maxPending = 1 << 16
	ackTimeout = 30 * time.Second
	stallWait  = 5 * time.Second
)

var _ ehresource.Runtime = (*Streams)(nil)

// NewStreams builds the partition streams over the bus.
func NewStreams(b *bus.Bus) (*Streams, error) {
	js, err := jetstream.New(b.Conn(), jetstream.WithPublishAsyncMaxPending(maxPending), jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		return nil, fmt.Errorf("eventhubs: jetstream: %w", err)
	}
	return &Streams{bus: b, js: js}, nil
}

// entityKey is an event hub's token in stream names and subjects: the
// lower-cased name with '.' (a subject separator, and forbidden in stream
// names) mapped to '~', which entity names can't contain. Long names are
// shortened with a hash, since the stream name is a directory name.
func entityKey(namespace, eventhub string) string {
	key := strings.ToLower(namespace) + "_" + strings.ReplaceAll(strings.ToLower(eventhub), ".", "~")
	if len(key) > 120 {
		sum := sha256.Sum256([]byte(key))
		key = key[:100] + "~" + hex.EncodeToString(sum[:8])
	}
	return key
}

// streamName is a partition's logical stream name: eh_{ns}_{eh}_{p}. The
// namespace ends at its first '_' (namespace names have none) and the
// partition is after the last one.
func streamName(namespace, eventhub string, partition int) string {
	return "eh_" + entityKey(namespace, eventhub) + "_" + strconv.Itoa(partition)
}

// subject is a partition's logical subject: eh.{ns}_{eh}.{p}.
func subject(namespace, eventhub string, partition int) string {
	return "eh." + entityKey(namespace, eventhub) + "." + strconv.Itoa(partition)
}

// EnsureEventHub implements ehresource.Runtime: a stream per partition with
// the retention as MaxAge. Idempotent; a partition count that grew
// (Premium) gets its new streams.
func (s *Streams) EnsureEventHub(ctx context.Context, spec ehresource.EventHubSpec) error {
	for p := range spec.PartitionCount {
		_, err := s.bus.EnsureStream(ctx, jetstream.StreamConfig{
			Name:      streamName(spec.Namespace, spec.Name, p),
			Subjects:  []string{subject(spec.Namespace, spec.Name, p)},
			Storage:   jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy,
			Discard:   jetstream.DiscardOld,
			MaxAge:    spec.Retention,
		})
		if err != nil {
			return fmt.Errorf("eventhubs: ensure partition %d of %s/%s: %w", p, spec.Namespace, spec.Name, err)
		}
	}
	return nil
}

// RemoveEventHub implements ehresource.Runtime: the streams and every event
// in them are deleted.
func (s *Streams) RemoveEventHub(ctx context.Context, spec ehresource.EventHubSpec) error {
	for p := range max(spec.PartitionCount, 1) {
		err := s.js.DeleteStream(ctx, s.bus.Stream(streamName(spec.Namespace, spec.Name, p)))
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("eventhubs: delete partition %d of %s/%s: %w", p, spec.Namespace, spec.Name, err)
		}
	}
	return nil
}

// PartitionForKey maps a partition key to a partition: FNV-1a (32 bit) of
// the key's UTF-8 bytes modulo the partition count. Any stable hash gives
// Event Hubs' guarantee (one key, one partition, while the count holds);
// this is not Azure's own hash, so the partition a key lands on differs
// from Azure's.
func PartitionForKey(key string, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(partitions))
}

// outgoing is one event ready to publish.
type outgoing struct {
	partition int
	msg       *nats.Msg
}

// publish stores every message and returns once JetStream acknowledged all
// of them: the publishes are pipelined (one round trip for the batch, not
// one per event), in order per partition. When a partition's stream is
// missing (a crash between the resource write and Provision), ensure makes
// the streams and the failed messages are sent again; messages already
// acknowledged are never sent twice.
func (s *Streams) publish(ctx context.Context, msgs []outgoing, ensure func(context.Context) error) error {
	failed, err := s.publishOnce(ctx, msgs)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
		return err
	}
	if err := ensure(ctx); err != nil {
		return err
	}
	_, err = s.publishOnce(ctx, failed)
	return err
}

// publishOnce returns the messages that were not acknowledged, in order,
// with the first error.
func (s *Streams) publishOnce(ctx context.Context, msgs []outgoing) ([]outgoing, error) {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	var firstErr error
	var failed []outgoing
	for i, m := range msgs {
		f, err := s.js.PublishMsgAsync(m.msg, jetstream.WithStallWait(stallWait))
		if err != nil {
			// Nothing after a refused publish is sent, so per-partition
			// order holds when the rest is retried.
			if firstErr == nil {
				firstErr = fmt.Errorf("eventhubs: publish: %w", err)
			}
			failed = append(failed, msgs[i:]...)
			futures = futures[:i]
			break
		}
		futures[i] = f
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if firstErr == nil {
				firstErr = fmt.Errorf("eventhubs: publish: %w", err)
			}
			failed = append(failed, msgs[i])
		case <-ctx.Done():
			return msgs, fmt.Errorf("eventhubs: publish: %w", context.Cause(ctx))
		}
	}
	return failed, firstErr
}

// read returns up to max stored events of a partition from a sequence
// number (an earlier number than the oldest retained starts at the oldest).
// It reads by sequence with direct gets, leaving no consumer behind on the
// server; receivers that follow a partition live (AMQP) will use a consumer.
func (s *Streams) read(ctx context.Context, namespace, eventhub string, partition int, from int64, max int) ([]Event, error) {
	stream, err := s.js.Stream(ctx, s.bus.Stream(streamName(namespace, eventhub, partition)))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil // never sent to: nothing to read
	}
	if err != nil {
		return nil, fmt.Errorf("eventhubs: read %s/%s/%d: %w", namespace, eventhub, partition, err)
	}
	st := stream.CachedInfo().State
	seq := max64(uint64(from)+1, st.FirstSeq)
	var out []Event
	for ; seq <= st.LastSeq && len(out) < max; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // expired or deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("eventhubs: read %s/%s/%d at %d: %w", namespace, eventhub, partition, seq, err)
		}
		out = append(out, decode(msg, partition))
	}
	return out, nil
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
