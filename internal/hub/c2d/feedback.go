package c2d

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Feedback status codes, as IoT Hub writes them in feedback records.
const (
	StatusSuccess               = "Success"
	StatusExpired               = "Expired"
	StatusDeliveryCountExceeded = "DeliveryCountExceeded"
	StatusRejected              = "Rejected"
)

var statusDescriptions = map[string]string{
	StatusSuccess:               "Success",
	StatusExpired:               "Message expired",
	StatusDeliveryCountExceeded: "Message delivery count exceeded",
	StatusRejected:              "Message rejected",
}

// FeedbackRecord is the outcome of one cloud-to-device message whose
// iothub-ack asked for it.
type FeedbackRecord struct {
	OriginalMessageID  string    `json:"originalMessageId"`
	Description        string    `json:"description"`
	DeviceGenerationID string    `json:"deviceGenerationId"`
	DeviceID           string    `json:"deviceId"`
	EnqueuedTimeUTC    time.Time `json:"enqueuedTimeUtc"`
	StatusCode         string    `json:"statusCode"`
}

// FeedbackSettings are a hub's cloudToDevice.feedback settings; zero
// values take IoT Hub's defaults (lock 1 minute, TTL 1 hour, 10 deliveries).
type FeedbackSettings struct {
	LockDuration     time.Duration
	TTL              time.Duration
	MaxDeliveryCount int
}

func (s FeedbackSettings) withDefaults() FeedbackSettings {
	if s.LockDuration <= 0 {
		s.LockDuration = time.Minute
	}
	if s.TTL <= 0 {
		s.TTL = time.Hour
	}
	if s.MaxDeliveryCount <= 0 {
		s.MaxDeliveryCount = 10
	}
	return s
}

// FeedbackBatch is one feedback message: the records waiting when it was
// received, settled together.
type FeedbackBatch struct {
	Records []FeedbackRecord
	// DeliveryCount is how often the batch's records have been delivered,
	// this time included (the most of any record).
	DeliveryCount int
	msgs          []jetstream.Msg
}

// feedbackState is which hubs' feedback streams this node made sure of,
// and their consumers. Guarded by Queue.mu.
type feedbackState struct {
	ensured   map[string]bool
	consumers map[string]jetstream.Consumer
}

func newFeedbackState() feedbackState {
	return feedbackState{ensured: map[string]bool{}, consumers: map[string]jetstream.Consumer{}}
}

func feedbackStream(hub string) string  { return "c2dfeedback-" + strings.ToLower(hub) }
func feedbackSubject(hub string) string { return "hub." + strings.ToLower(hub) + ".c2dfeedback" }

// ensureFeedback creates the hub's feedback stream: a work queue of
// records, one stream message each, batched when read. Hubs created before
// feedback existed get theirs on first use.
func (q *Queue) ensureFeedback(ctx context.Context, hub string) error {
	_, err := q.bus.EnsureStream(ctx, jetstream.StreamConfig{
		Name:      feedbackStream(hub),
		Subjects:  []string{feedbackSubject(hub)},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy,
		// Outlives the longest feedback TTL IoT Hub allows (48 h); the
		// TTL itself is checked when records are read.
		MaxAge: 49 * time.Hour,
		// A message settled twice (a retried settlement) gives one record:
		// records carry the message's stream sequence as their id.
		Duplicates: 10 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("c2d: ensure feedback stream for %s: %w", hub, err)
	}
	q.mu.Lock()
	q.feedback.ensured[strings.ToLower(hub)] = true
	q.mu.Unlock()
	return nil
}

func (q *Queue) ensureFeedbackOnce(ctx context.Context, hub string) error {
	q.mu.Lock()
	done := q.feedback.ensured[strings.ToLower(hub)]
	q.mu.Unlock()
	if done {
		return nil
	}
	return q.ensureFeedback(ctx, hub)
}

func (q *Queue) removeFeedback(ctx context.Context, hub string) error {
	q.mu.Lock()
	delete(q.feedback.ensured, strings.ToLower(hub))
	for k := range q.feedback.consumers {
		if strings.HasPrefix(k, strings.ToLower(hub)+"/") {
			delete(q.feedback.consumers, k)
		}
	}
	q.mu.Unlock()
	err := q.bus.JetStream().DeleteStream(ctx, q.bus.Stream(feedbackStream(hub)))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("c2d: delete feedback stream for %s: %w", hub, err)
	}
	return nil
}

// wantsFeedback reports whether a message's iothub-ack asks for a record
// with status.
func wantsFeedback(ack, status string) bool {
	switch strings.ToLower(ack) {
	case "full":
		return true
	case "positive":
		return status == StatusSuccess
	case "negative":
		return status != StatusSuccess
	}
	return false
}

// addressOf reads the hub, device and module of a queued message from its
// subject (…hub.{hub}.c2d.{hex(device/module)}).
func addressOf(msg jetstream.Msg) (hub, deviceID, moduleID string, ok bool) {
	parts := strings.Split(msg.Subject(), ".")
	n := len(parts)
	if n < 4 || parts[n-2] != "c2d" || parts[n-4] != "hub" {
		return "", "", "", false
	}
	raw, err := hex.DecodeString(parts[n-1])
	if err != nil {
		return "", "", "", false
	}
	deviceID, moduleID, _ = strings.Cut(string(raw), "/")
	return parts[n-3], deviceID, moduleID, true
}

// feedbackFor stores the record of a message's outcome when its iothub-ack
// asks for one. m may be nil (decoded from msg then). Failures are logged:
// the settlement they accompany stands.
func (q *Queue) feedbackFor(ctx context.Context, msg jetstream.Msg, m *Message, status string) {
	if m == nil {
		m = decode(msg)
	}
	if !wantsFeedback(m.Ack, status) {
		return
	}
	hub, deviceID, moduleID, ok := addressOf(msg)
	if !ok {
		q.log.Warn("c2d feedback: message on an unexpected subject; no feedback", "subject", msg.Subject())
		return
	}
	gen := m.GenerationID
	if gen == "" && q.generation != nil {
		gen = q.generation(ctx, hub, deviceID, moduleID)
	}
	rec := FeedbackRecord{OriginalMessageID: m.MessageID, Description: statusDescriptions[status], DeviceGenerationID: gen,
		DeviceID: deviceID, EnqueuedTimeUTC: q.now().UTC(), StatusCode: status}
	if err := q.storeFeedback(ctx, hub, msg, rec); err != nil {
		q.log.Error("c2d feedback lost", "hub", hub, "device", deviceID, "messageId", m.MessageID, "status", status, "err", err)
	}
}

func (q *Queue) storeFeedback(ctx context.Context, hub string, msg jetstream.Msg, rec FeedbackRecord) error {
	if err := q.ensureFeedbackOnce(ctx, hub); err != nil {
		return err
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("c2d: encode feedback: %w", err)
	}
	hdr := nats.Header{}
	if md, err := msg.Metadata(); err == nil {
		hdr.Set(jetstream.MsgIDHeader, md.Stream+"-"+strconv.FormatUint(md.Sequence.Stream, 10))
	}
	if _, err := q.bus.Publish(ctx, feedbackSubject(hub), body, hdr); err != nil {
		return fmt.Errorf("c2d: store feedback for %s: %w", hub, err)
	}
	return nil
}

func (q *Queue) feedbackConsumer(ctx context.Context, hub string, s FeedbackSettings) (jetstream.Consumer, error) {
	key := strings.ToLower(hub) + "/" + s.LockDuration.String() + "/" + strconv.Itoa(s.MaxDeliveryCount)
	q.mu.Lock()
	c, ok := q.feedback.consumers[key]
	q.mu.Unlock()
	if ok {
		return c, nil
	}
	if err := q.ensureFeedbackOnce(ctx, hub); err != nil {
		return nil, err
	}
	// MaxDeliver is one more than maxDeliveryCount: the extra delivery
	// never reaches a service, it is how a record is dropped.
	c, err := q.bus.JetStream().CreateOrUpdateConsumer(ctx, q.bus.Stream(feedbackStream(hub)), jetstream.ConsumerConfig{
		Durable:       "feedback",
		FilterSubject: q.bus.Subject(feedbackSubject(hub)),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.LockDuration,
		MaxDeliver:    s.MaxDeliveryCount + 1,
		MaxAckPending: 10000,
	})
	if err != nil {
		return nil, fmt.Errorf("c2d: feedback consumer for %s: %w", hub, err)
	}
	q.mu.Lock()
	q.feedback.consumers[key] = c
	q.mu.Unlock()
	return c, nil
}

// ReceiveFeedback takes the hub's waiting feedback records under lock, at
// most max of them in one batch, waiting up to wait (or until ctx ends) for
// the first. It returns (nil, nil) when none came. Records past their TTL or
// past maxDeliveryCount deliveries are dropped on the way.
func (q *Queue) ReceiveFeedback(ctx context.Context, hub string, s FeedbackSettings, max int, wait time.Duration) (*FeedbackBatch, error) {
	s = s.withDefaults()
	if max <= 0 {
		max = 100
	}
	c, err := q.feedbackConsumer(ctx, hub, s)
	if err != nil {
		return nil, err
	}
	b := &FeedbackBatch{}
	deadline := time.Now().Add(wait)
	for len(b.msgs) == 0 {
		left := time.Until(deadline)
		if left < 10*time.Millisecond || ctx.Err() != nil {
			return nil, nil
		}
		fctx, cancel := context.WithTimeout(ctx, left)
		first, err := c.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				continue
			}
			return nil, fmt.Errorf("c2d: fetch feedback for %s: %w", hub, err)
		}
		q.takeFeedback(hub, s, b, first)
		cancel()
	}
	if max > 1 {
		// Whatever else is waiting joins the batch, without waiting for more.
		if more, err := c.FetchNoWait(max - 1); err == nil {
			q.takeFeedback(hub, s, b, more)
		}
	}
	return b, nil
}

func (q *Queue) takeFeedback(hub string, s FeedbackSettings, b *FeedbackBatch, batch jetstream.MessageBatch) {
	for msg := range batch.Messages() {
		var rec FeedbackRecord
		if err := json.Unmarshal(msg.Data(), &rec); err != nil {
			q.log.Error("c2d feedback record unreadable; dropped", "hub", hub, "err", err)
			_ = msg.Term()
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			_ = msg.Nak()
			continue
		}
		if int(md.NumDelivered) > s.MaxDeliveryCount {
			q.log.Warn("c2d feedback dropped: not completed within maxDeliveryCount deliveries", "hub", hub,
				"originalMessageId", rec.OriginalMessageID, "maxDeliveryCount", s.MaxDeliveryCount)
			_ = msg.Term()
			continue
		}
		if !q.now().Before(rec.EnqueuedTimeUTC.Add(s.TTL)) {
			_ = msg.Term() // expired (cloudToDevice.feedback.ttlAsIso8601)
			continue
		}
		b.Records = append(b.Records, rec)
		b.msgs = append(b.msgs, msg)
		b.DeliveryCount = max(b.DeliveryCount, int(md.NumDelivered))
	}
}

// SettleFeedback completes (removes), abandons (delivers again) or rejects
// (drops) a batch's records.
func (q *Queue) SettleFeedback(ctx context.Context, b *FeedbackBatch, how Settlement) error {
	var errs []error
	for _, msg := range b.msgs {
		var err error
		switch how {
		case Complete:
			err = msg.DoubleAck(ctx)
		case Abandon:
			err = msg.Nak()
		case Reject:
			err = msg.Term()
		default:
			return fmt.Errorf("c2d: unknown settlement %d", how)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrLockLost, errors.Join(errs...))
	}
	return nil
}
