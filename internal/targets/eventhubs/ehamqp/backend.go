package ehamqp

import (
	"context"
	"time"

	"github.com/outpost-iot/outpost/internal/amqp"
	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// Rights a claim may need at attach.
const (
	RightSend   = "Send"
	RightListen = "Listen"
	RightManage = "Manage"
)

// Backend is the store behind one kind of AMQP host.
type Backend interface {
	// Open checks the connection's host names an entity container
	// (namespace, hub); an error closes the connection.
	Open(ctx context.Context, c *amqp.Conn) error
	// PutToken verifies a CBS token and returns the claim; its Principal
	// must be a Grant.
	PutToken(ctx context.Context, c *amqp.Conn, t amqp.TokenRequest) (amqp.Claim, error)
	// EventHub finds an event hub of the connection's host. A missing one
	// is a *wire.Error with amqp:not-found.
	EventHub(ctx context.Context, c *amqp.Conn, name string) (EventHub, error)
}

// Grant is what a claim allows.
type Grant interface {
	// Allow checks the right on the named event hub (and the network
	// rules for the connection's address); a refusal is a *wire.Error.
	Allow(ctx context.Context, c *amqp.Conn, eventHub, right string) error
}

// EventHub is one event hub (or built-in endpoint).
type EventHub interface {
	Name() string
	Partitions() int
	CreatedAt() time.Time
	// HasConsumerGroup reports whether the consumer group exists.
	HasConsumerGroup(name string) bool
	// MaxMessageSize is the largest event or batch accepted.
	MaxMessageSize() uint64
	// Info describes a partition.
	Info(ctx context.Context, partition int) (PartitionInfo, error)
	// Read hands the events of a partition, from pos on, to fn in order
	// until ctx ends or fn fails; it waits for new events at the end.
	Read(ctx context.Context, partition int, pos Position, fn func(Event) error) error
	// Publish stores events: on partition, or with partition -1 by each
	// message's x-opt-partition-key (or spread). It returns once stored.
	// A read-only endpoint returns a *wire.Error.
	Publish(ctx context.Context, partition int, msgs []*wire.Message) error
}

// PartitionInfo is a partition's runtime information.
type PartitionInfo struct {
	BeginSequenceNumber int64
	LastSequenceNumber  int64 // -1 when empty
	LastOffset          string
	LastEnqueued        time.Time
	Empty               bool
}

// PositionKind says where a receiver starts.
type PositionKind int

// Position kinds.
const (
	FromEarliest PositionKind = iota
	FromLatest
	FromSequence
	FromTime
)

// Position is a receiver's start: the earliest retained event, only new
// events, after (or at, when Inclusive) a sequence number (offsets are
// sequence numbers in decimal here), or from an enqueued time.
type Position struct {
	Kind      PositionKind
	Sequence  int64
	Inclusive bool
	Time      time.Time
}

// Event is a stored event as receivers get it.
type Event struct {
	Body           []byte
	SequenceNumber int64
	EnqueuedTime   time.Time
	PartitionKey   string
	// Properties carries message-id, correlation-id, content-type,
	// content-encoding, subject… as stored (nil when none).
	Properties *wire.Properties
	// Annotations are extra message annotations (the IoT hub's
	// iothub-connection-device-id and the like).
	Annotations wire.Map
	// ApplicationProperties are the user properties.
	ApplicationProperties wire.Map
}
