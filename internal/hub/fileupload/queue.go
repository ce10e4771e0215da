package fileupload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/hub"
)

// streamMaxAge outlives the longest notification TTL IoT Hub allows (48 h);
// the TTL itself is checked at delivery.
const streamMaxAge = 49 * time.Hour

// Notification is a file upload notification as IoT Hub delivers it.
type Notification struct {
	DeviceID        string    `json:"deviceId"`
	BlobURI         string    `json:"blobUri"`
	BlobName        string    `json:"blobName"`
	LastUpdatedTime time.Time `json:"lastUpdatedTime"`
	BlobSizeInBytes int64     `json:"blobSizeInBytes"`
	EnqueuedTimeUTC time.Time `json:"enqueuedTimeUtc"`
	// DeliveryCount is how many times it has been delivered, this time
	// included (set on received notifications).
	DeliveryCount int `json:"-"`
}

// Settlement is what a receiver does with a locked notification.
type Settlement int

const (
	// Complete removes the notification.
	Complete Settlement = iota
	// Abandon releases the lock at once; the notification is delivered
	// again, counting towards maxDeliveryCount.
	Abandon
	// Reject drops the notification (an AMQP receiver's rejected outcome;
	// IoT Hub has no dead-letter queue for file notifications).
	Reject
)

// ErrLockLost is returned when a lock token is unknown (never issued, already
// settled, issued by another node) or its lock has expired.
var ErrLockLost = errors.New("fileupload: the lock token is unknown or its lock expired")

func notifyStream(hubName string) string { return "filenotifications-" + strings.ToLower(hubName) }

func notifySubject(hubName string) string {
	return "hub." + strings.ToLower(hubName) + ".filenotifications"
}

// heldMessage is a delivered notification under lock on this node.
type heldMessage struct {
	msg      jetstream.Msg
	deadline time.Time
	stream   string // the message's stream and sequence: held by one lock at a time
	seq      uint64
}

func (h heldMessage) key() string { return h.stream + "/" + strconv.FormatUint(h.seq, 10) }

// queue is the file notification queue of every hub: a JetStream
// work-queue stream per hub with one durable consumer whose AckWait is the
// lock duration. Locks live in the memory of the node that delivered the
// notification (as Service Bus locks do here): a settlement must reach that
// node, and after a restart JetStream redelivers when the lock runs out.
//
// Lock order: mu guards locks and consumers; it is never held across a
// network call.
type queue struct {
	svc *Service

	mu    sync.Mutex
	locks map[string]heldMessage
	// holders is the lock token of each held message by stream and
	// sequence: a new delivery revokes the older lock, whatever its
	// deadline says — JetStream's AckWait started when it delivered, a
	// little before this node set the deadline.
	holders   map[string]string
	consumers map[string]jetstream.Consumer
}

// EnsureHub creates the hub's notification stream; calling it again is
// harmless.
func (s *Service) EnsureHub(ctx context.Context, hubName string) error {
	_, err := s.bus.EnsureStream(ctx, jetstream.StreamConfig{
		Name:      notifyStream(hubName),
		Subjects:  []string{notifySubject(hubName)},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy,
		MaxAge:    streamMaxAge,
	})
	if err != nil {
		return fmt.Errorf("fileupload: ensure notification stream of %s: %w", hubName, err)
	}
	return nil
}

// RemoveHub deletes the hub's notification queue and pending uploads.
func (s *Service) RemoveHub(ctx context.Context, hubName string) error {
	s.queue.mu.Lock()
	for k := range s.queue.consumers {
		if strings.HasPrefix(k, strings.ToLower(hubName)+"|") {
			delete(s.queue.consumers, k)
		}
	}
	s.queue.mu.Unlock()
	err := s.bus.JetStream().DeleteStream(ctx, s.bus.Stream(notifyStream(hubName)))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("fileupload: delete notification stream of %s: %w", hubName, err)
	}
	return s.pending.removeHub(ctx, hubName)
}

// enqueue stores a notification; it returns once JetStream has it.
func (s *Service) enqueue(ctx context.Context, hubName string, n Notification) error {
	if _, err := s.bus.Publish(ctx, notifySubject(hubName), mustJSON(n), nil); err != nil {
		return fmt.Errorf("fileupload: enqueue notification for %s: %w", hubName, err)
	}
	return nil
}

// consumer returns the hub's durable consumer for the hub's current
// settings. MaxDeliver is one more than maxDeliveryCount: the extra delivery
// never reaches a receiver, it is how the notification is dead-lettered
// (dropped with a log line) rather than left in the stream until MaxAge.
func (q *queue) consumer(ctx context.Context, hubName string, st Settings) (jetstream.Consumer, error) {
	key := strings.ToLower(hubName) + "|" + st.LockDuration.String() + "|" + strconv.Itoa(st.MaxDeliveryCount)
	q.mu.Lock()
	c, ok := q.consumers[key]
	q.mu.Unlock()
	if ok {
		return c, nil
	}
	b := q.svc.bus
	c, err := b.JetStream().CreateOrUpdateConsumer(ctx, b.Stream(notifyStream(hubName)), jetstream.ConsumerConfig{
		Durable:       "filenotifications",
		FilterSubject: b.Subject(notifySubject(hubName)),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       st.LockDuration,
		MaxDeliver:    st.MaxDeliveryCount + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("fileupload: notification consumer of %s: %w", hubName, err)
	}
	q.mu.Lock()
	q.consumers[key] = c
	q.mu.Unlock()
	return c, nil
}

// Receive takes the hub's next live notification under lock, waiting up to
// wait; (nil, "", nil) means none came. Notifications past their TTL or
// past maxDeliveryCount deliveries are dropped on the way, with a log line.
func (s *Service) Receive(ctx context.Context, h hub.Hub, wait time.Duration) (*Notification, string, error) {
	st := notificationSettings(h)
	c, err := s.queue.consumer(ctx, h.Name, st)
	if err != nil {
		return nil, "", err
	}
	s.queue.sweep(s.now())
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left < 10*time.Millisecond {
			return nil, "", nil
		}
		// The wait ends early when the caller goes away (an HTTP client
		// that disconnected must not take a notification under lock).
		fctx, cancel := context.WithTimeout(ctx, left)
		batch, err := c.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			timedOut := fctx.Err() != nil
			cancel()
			if ctx.Err() != nil {
				return nil, "", nil
			}
			// A pull that outlasted its wait under load means "nothing yet".
			if timedOut || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				if time.Now().After(deadline) {
					return nil, "", nil
				}
				continue
			}
			return nil, "", fmt.Errorf("fileupload: fetch notification of %s: %w", h.Name, err)
		}
		var got jetstream.Msg
		for m := range batch.Messages() {
			got = m
		}
		cancel()
		if got == nil {
			return nil, "", nil
		}
		var n Notification
		if err := json.Unmarshal(got.Data(), &n); err != nil {
			s.log.Error("file notification unreadable; dropped", "hub", h.Name, "err", err)
			_ = got.Term()
			continue
		}
		md, err := got.Metadata()
		if err != nil {
			return nil, "", fmt.Errorf("fileupload: notification metadata: %w", err)
		}
		n.DeliveryCount = int(md.NumDelivered)
		if n.DeliveryCount > st.MaxDeliveryCount {
			s.log.Warn("file notification dead-lettered: not completed within maxDeliveryCount deliveries; dropped",
				"hub", h.Name, "device", n.DeviceID, "blob", n.BlobName, "maxDeliveryCount", st.MaxDeliveryCount)
			_ = got.Term()
			continue
		}
		if !s.now().Before(n.EnqueuedTimeUTC.Add(st.TTL)) {
			s.log.Info("file notification expired (messagingEndpoints.fileNotifications.ttlAsIso8601); dropped",
				"hub", h.Name, "device", n.DeviceID, "blob", n.BlobName, "ttl", st.TTL)
			_ = got.Term()
			continue
		}
		token := newLockToken()
		held := heldMessage{msg: got, deadline: s.now().Add(st.LockDuration), stream: md.Stream, seq: md.Sequence.Stream}
		s.queue.mu.Lock()
		key := held.key()
		if old, ok := s.queue.holders[key]; ok {
			delete(s.queue.locks, old)
		}
		s.queue.holders[key] = token
		s.queue.locks[token] = held
		s.queue.mu.Unlock()
		return &n, token, nil
	}
}

// Settle completes, abandons or rejects a notification received on this
// node.
// Completing returns only once JetStream confirmed the acknowledgement.
func (s *Service) Settle(ctx context.Context, lockToken string, how Settlement) error {
	s.queue.mu.Lock()
	held, ok := s.queue.locks[lockToken]
	delete(s.queue.locks, lockToken)
	if ok && s.queue.holders[held.key()] == lockToken {
		delete(s.queue.holders, held.key())
	}
	s.queue.mu.Unlock()
	// Past the deadline JetStream may already have redelivered it; settling
	// the old delivery would act on someone else's lock.
	if !ok || !s.now().Before(held.deadline) {
		return ErrLockLost
	}
	var err error
	switch how {
	case Complete:
		err = held.msg.DoubleAck(ctx)
	case Abandon:
		err = held.msg.Nak()
	case Reject:
		err = held.msg.Term()
	default:
		return fmt.Errorf("fileupload: unknown settlement %d", how)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLockLost, err)
	}
	return nil
}

// sweep forgets locks that have run out (their messages are redelivered by
// JetStream), so abandoned receivers do not grow the map.
func (q *queue) sweep(now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, h := range q.locks {
		if !now.Before(h.deadline) {
			delete(q.locks, k)
			if q.holders[h.key()] == k {
				delete(q.holders, h.key())
			}
		}
	}
}

func notificationSettings(h hub.Hub) Settings {
	f := h.FileUpload
	st := Settings{LockDuration: f.LockDuration, TTL: f.TTL, MaxDeliveryCount: f.MaxDeliveryCount}
	if st.LockDuration <= 0 {
		st.LockDuration = time.Minute
	}
	if st.TTL <= 0 {
		st.TTL = time.Hour
	}
	if st.MaxDeliveryCount <= 0 {
		st.MaxDeliveryCount = 10
	}
	return st
}

// newLockToken is unguessable, so one service caller cannot settle
// another's notification by counting.
func newLockToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
