package c2d

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/bus"
)

// MaxQueuedPerDevice is IoT Hub's per-device queue depth.
const MaxQueuedPerDevice = 50

// Header names on stored messages.
const (
	hdrMessageID     = "message-id"
	hdrCorrelationID = "correlation-id"
	hdrUserID        = "user-id"
	hdrTo            = "to"
	hdrAck           = "iothub-ack"
	hdrExpiry        = "absolute-expiry-time"
	hdrEnqueued      = "iothub-enqueuedtime"
	hdrContentType   = "content-type"
	hdrContentEnc    = "content-encoding"
	hdrGeneration    = "iothub-device-generation-id"
	appPrefix        = "app-"
)

// Message is a cloud-to-device message.
type Message struct {
	MessageID, CorrelationID, UserID string
	ContentType, ContentEncoding     string
	// Ack is the feedback requested: none, positive, negative or full.
	Ack string
	// GenerationID is the device's generationId when it was sent, for
	// feedback records; when empty, feedback looks it up (see
	// SetGenerationLookup).
	GenerationID string
	Expiry       time.Time
	Enqueued     time.Time
	App          map[string]string
	Payload      []byte
	// DeliveryCount and LockToken are set on received messages.
	DeliveryCount int
	LockToken     string
}

// ErrQueueFull is returned when a device already has 50 messages queued.
var ErrQueueFull = errors.New("c2d: the device's queue is full")

// Settings are a hub's cloudToDevice settings.
type Settings struct {
	MaxDeliveryCount int
	DefaultTTL       time.Duration
	LockDuration     time.Duration
}

// Queue is the cloud-to-device queue of every hub, and its feedback queue.
//
// Lock order: mu guards locks, consumers and feedback's maps; it is never
// held across a network call.
type Queue struct {
	bus *bus.Bus
	now func() time.Time
	log *slog.Logger
	// generation looks a device's generationId up for feedback records of
	// messages sent without one.
	generation GenerationLookup

	mu        sync.Mutex
	locks     map[string]jetstream.Msg      // lock token → held message (HTTPS receive)
	consumers map[string]jetstream.Consumer // per device, created once
	feedback  feedbackState
}

// GenerationLookup returns a device's (or module's) generationId, "" when
// it is unknown.
type GenerationLookup func(ctx context.Context, hub, deviceID, moduleID string) string

// New builds the queue.
func New(b *bus.Bus, now func() time.Time) *Queue {
	return &Queue{bus: b, now: now, log: slog.New(slog.DiscardHandler), locks: map[string]jetstream.Msg{},
		consumers: map[string]jetstream.Consumer{}, feedback: newFeedbackState()}
}

// SetGenerationLookup sets how feedback records find the generationId of
// devices whose messages were sent without one. Call it before use.
func (q *Queue) SetGenerationLookup(f GenerationLookup) { q.generation = f }

// SetLogger sets where feedback the queue could not store is reported.
// Call it before use.
func (q *Queue) SetLogger(l *slog.Logger) {
	if l != nil {
		q.log = l
	}
}

func streamName(hub string) string { return "c2d-" + strings.ToLower(hub) }

// deviceToken encodes a device key as one subject token.
func deviceToken(deviceID, moduleID string) string {
	return hex.EncodeToString([]byte(deviceID + "/" + moduleID))
}

func logicalSubject(hub, deviceID, moduleID string) string {
	return "hub." + strings.ToLower(hub) + ".c2d." + deviceToken(deviceID, moduleID)
}

// EnsureHub creates the hub's queue stream.
func (q *Queue) EnsureHub(ctx context.Context, hub string) error {
	_, err := q.bus.EnsureStream(ctx, jetstream.StreamConfig{
		Name:                 streamName(hub),
		Subjects:             []string{"hub." + strings.ToLower(hub) + ".c2d.*"},
		Storage:              jetstream.FileStorage,
		Retention:            jetstream.WorkQueuePolicy,
		MaxMsgsPerSubject:    MaxQueuedPerDevice,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxAge:               48 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("c2d: ensure stream for %s: %w", hub, err)
	}
	return q.ensureFeedback(ctx, hub)
}

// RemoveHub deletes the hub's queue and its feedback queue.
func (q *Queue) RemoveHub(ctx context.Context, hub string) error {
	q.mu.Lock()
	for k := range q.consumers {
		if strings.HasPrefix(k, strings.ToLower(hub)+"/") {
			delete(q.consumers, k)
		}
	}
	q.mu.Unlock()
	err := q.bus.JetStream().DeleteStream(ctx, q.bus.Stream(streamName(hub)))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("c2d: delete stream for %s: %w", hub, err)
	}
	return q.removeFeedback(ctx, hub)
}

// Send queues a message for a device.
func (q *Queue) Send(ctx context.Context, hub, deviceID, moduleID string, m Message, s Settings) error {
	hdr := nats.Header{}
	set := func(k, v string) {
		if v != "" {
			hdr.Set(k, v)
		}
	}
	set(hdrMessageID, m.MessageID)
	set(hdrCorrelationID, m.CorrelationID)
	set(hdrUserID, m.UserID)
	set(hdrContentType, m.ContentType)
	set(hdrContentEnc, m.ContentEncoding)
	set(hdrAck, m.Ack)
	set(hdrGeneration, m.GenerationID)
	to := "/devices/" + deviceID + "/messages/devicebound"
	if moduleID != "" {
		to = "/devices/" + deviceID + "/modules/" + moduleID + "/messages/devicebound"
	}
	set(hdrTo, to)
	now := q.now().UTC()
	exp := m.Expiry
	if exp.IsZero() {
		ttl := s.DefaultTTL
		if ttl <= 0 {
			ttl = time.Hour
		}
		exp = now.Add(ttl)
	}
	set(hdrExpiry, exp.Format(time.RFC3339Nano))
	set(hdrEnqueued, now.Format(time.RFC3339Nano))
	for k, v := range m.App {
		hdr.Set(appPrefix+url.QueryEscape(k), v)
	}
	_, err := q.bus.Publish(ctx, logicalSubject(hub, deviceID, moduleID), m.Payload, hdr)
	// JetStream refuses the 51st message of a subject (DiscardNewPerSubject).
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "maximum messages per subject") {
		return ErrQueueFull
	}
	if err != nil {
		return fmt.Errorf("c2d: send to %s/%s: %w", hub, deviceID, err)
	}
	return nil
}

// Pending reports whether a device has messages queued, without creating
// its consumer (one stream-info request filtered on its subject).
func (q *Queue) Pending(ctx context.Context, hub, deviceID, moduleID string) (bool, error) {
	st, err := q.bus.JetStream().Stream(ctx, q.bus.Stream(streamName(hub)))
	if err != nil {
		return false, fmt.Errorf("c2d: stream for %s: %w", hub, err)
	}
	subject := q.bus.Subject("hub", strings.ToLower(hub), "c2d", deviceToken(deviceID, moduleID))
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return false, fmt.Errorf("c2d: stream info for %s: %w", hub, err)
	}
	return info.State.Subjects[subject] > 0, nil
}

// consumer returns the device's durable consumer. MaxDeliver is one more
// than maxDeliveryCount: the extra delivery never reaches a device, it is
// how a message whose last lock ran out is found and dead-lettered (with
// DeliveryCountExceeded feedback) rather than left in the stream.
func (q *Queue) consumer(ctx context.Context, hub, deviceID, moduleID string, s Settings) (jetstream.Consumer, error) {
	key := strings.ToLower(hub) + "/" + deviceToken(deviceID, moduleID) + "/" + strconv.Itoa(s.MaxDeliveryCount)
	q.mu.Lock()
	c, ok := q.consumers[key]
	q.mu.Unlock()
	if ok {
		return c, nil
	}
	lock := s.LockDuration
	if lock <= 0 {
		lock = time.Minute
	}
	maxDeliver := s.MaxDeliveryCount
	if maxDeliver <= 0 {
		maxDeliver = 10
	}
	c, err := q.bus.JetStream().CreateOrUpdateConsumer(ctx, q.bus.Stream(streamName(hub)), jetstream.ConsumerConfig{
		Durable:       "d" + deviceToken(deviceID, moduleID),
		FilterSubject: q.bus.Subject("hub", strings.ToLower(hub), "c2d", deviceToken(deviceID, moduleID)),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       lock,
		MaxDeliver:    maxDeliver + 1,
		MaxAckPending: MaxQueuedPerDevice,
	})
	if err != nil {
		return nil, fmt.Errorf("c2d: consumer for %s/%s: %w", hub, deviceID, err)
	}
	q.mu.Lock()
	q.consumers[key] = c
	q.mu.Unlock()
	return c, nil
}

// Next takes the device's next live message, waiting up to wait (or until
// ctx ends). It returns (nil, nil, nil) when there is none. Expired messages
// and messages past maxDeliveryCount are dead-lettered on the way, with
// their feedback. Settle the returned message with SettleDelivery (or Hold
// and Settle).
func (q *Queue) Next(ctx context.Context, hub, deviceID, moduleID string, s Settings, wait time.Duration) (*Message, jetstream.Msg, error) {
	c, err := q.consumer(ctx, hub, deviceID, moduleID, s)
	if err != nil {
		return nil, nil, err
	}
	maxDeliver := s.MaxDeliveryCount
	if maxDeliver <= 0 {
		maxDeliver = 10
	}
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left < 10*time.Millisecond || ctx.Err() != nil {
			return nil, nil, nil
		}
		fctx, cancel := context.WithTimeout(ctx, left)
		batch, err := c.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				continue // the loop ends at the deadline
			}
			return nil, nil, fmt.Errorf("c2d: fetch for %s/%s: %w", hub, deviceID, err)
		}
		var got jetstream.Msg
		for m := range batch.Messages() {
			got = m
		}
		cancel()
		if got == nil {
			continue
		}
		m := decode(got)
		switch {
		case m.DeliveryCount > maxDeliver:
			q.deadLetter(ctx, got, m, StatusDeliveryCountExceeded)
			continue
		case !m.Expiry.IsZero() && q.now().After(m.Expiry):
			q.deadLetter(ctx, got, m, StatusExpired)
			continue
		}
		return m, &delivered{Msg: got, maxDeliver: maxDeliver}, nil
	}
}

// delivered is a message handed to a device: the settlement needs the
// hub's maxDeliveryCount as it was when the message was taken.
type delivered struct {
	jetstream.Msg
	maxDeliver int
}

// deadLetter removes a message the device will never get, with its
// negative feedback.
func (q *Queue) deadLetter(ctx context.Context, msg jetstream.Msg, m *Message, status string) {
	q.feedbackFor(ctx, msg, m, status)
	_ = msg.Term()
}

func decode(msg jetstream.Msg) *Message {
	h := msg.Headers()
	m := &Message{MessageID: h.Get(hdrMessageID), CorrelationID: h.Get(hdrCorrelationID), UserID: h.Get(hdrUserID),
		ContentType: h.Get(hdrContentType), ContentEncoding: h.Get(hdrContentEnc), Ack: h.Get(hdrAck),
		GenerationID: h.Get(hdrGeneration), App: map[string]string{}, Payload: msg.Data()}
	m.Expiry, _ = time.Parse(time.RFC3339Nano, h.Get(hdrExpiry))
	m.Enqueued, _ = time.Parse(time.RFC3339Nano, h.Get(hdrEnqueued))
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, appPrefix); ok && len(vs) > 0 {
			if un, err := url.QueryUnescape(name); err == nil {
				name = un
			}
			m.App[name] = vs[0]
		}
	}
	if md, err := msg.Metadata(); err == nil {
		m.DeliveryCount = int(md.NumDelivered)
		m.LockToken = strconv.FormatUint(md.Sequence.Stream, 10) + "-" + strconv.FormatUint(md.NumDelivered, 10)
	}
	return m
}

// Hold keeps a received message under its lock token (HTTPS receive).
func (q *Queue) Hold(lockToken string, msg jetstream.Msg) {
	q.mu.Lock()
	q.locks[lockToken] = msg
	q.mu.Unlock()
}

// ErrLockLost is returned for an unknown or expired lock token.
var ErrLockLost = errors.New("c2d: the lock token is unknown or its lock expired")

// Settle completes, abandons or rejects ("complete", "abandon", "reject") a
// message held under its lock token.
func (q *Queue) Settle(lockToken, how string) error {
	var st Settlement
	switch how {
	case "complete":
		st = Complete
	case "abandon":
		st = Abandon
	case "reject":
		st = Reject
	default:
		return fmt.Errorf("c2d: unknown settlement %q", how)
	}
	q.mu.Lock()
	msg, ok := q.locks[lockToken]
	delete(q.locks, lockToken)
	q.mu.Unlock()
	if !ok {
		return ErrLockLost
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return q.SettleDelivery(ctx, msg, st)
}

// Settlement is what a device does with a message it received.
type Settlement int

const (
	// Complete removes the message (positive feedback).
	Complete Settlement = iota
	// Abandon returns it to the queue for another delivery; past
	// maxDeliveryCount it is dead-lettered (DeliveryCountExceeded).
	Abandon
	// Reject dead-letters it (Rejected feedback).
	Reject
)

// SettleDelivery settles a message Next returned. Feedback the message
// asked for is stored before the message is settled (a failure to store it
// is logged, not returned: the device's settlement stands).
func (q *Queue) SettleDelivery(ctx context.Context, msg jetstream.Msg, how Settlement) error {
	maxDeliver := 0
	if d, ok := msg.(*delivered); ok {
		maxDeliver = d.maxDeliver
	}
	var err error
	switch how {
	case Complete:
		q.feedbackFor(ctx, msg, nil, StatusSuccess)
		err = msg.Ack()
	case Reject:
		q.feedbackFor(ctx, msg, nil, StatusRejected)
		err = msg.Term()
	case Abandon:
		md, merr := msg.Metadata()
		if merr == nil && maxDeliver > 0 && int(md.NumDelivered) >= maxDeliver {
			q.feedbackFor(ctx, msg, nil, StatusDeliveryCountExceeded)
			err = msg.Term()
		} else {
			err = msg.Nak()
		}
	default:
		return fmt.Errorf("c2d: unknown settlement %d", how)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLockLost, err)
	}
	return nil
}

// Properties is the MQTT property bag of a message: system properties under
// their $. names and application properties.
func (m *Message) Properties() map[string]string {
	p := map[string]string{}
	for k, v := range m.App {
		p[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			p[k] = v
		}
	}
	set("$.mid", m.MessageID)
	set("$.cid", m.CorrelationID)
	set("$.uid", m.UserID)
	set("$.ct", m.ContentType)
	set("$.ce", m.ContentEncoding)
	if !m.Expiry.IsZero() {
		p["$.exp"] = m.Expiry.UTC().Format(time.RFC3339)
	}
	return p
}
