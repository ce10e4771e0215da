package c2d_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub/c2d"
)

// clock is a settable clock for expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newQueue(t *testing.T) (*c2d.Queue, *clock) {
	t.Helper()
	b, err := bus.Open(context.Background(), bus.Config{StoreDir: t.TempDir(), StreamPrefix: "test"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	clk := &clock{t: time.Now()}
	q := c2d.New(b, clk.now)
	q.SetGenerationLookup(func(_ context.Context, hub, deviceID, moduleID string) string { return "gen-" + deviceID })
	if err := q.EnsureHub(context.Background(), "hub1"); err != nil {
		t.Fatal(err)
	}
	return q, clk
}

var settings = c2d.Settings{MaxDeliveryCount: 2, DefaultTTL: time.Hour, LockDuration: time.Minute}

func next(t *testing.T, q *c2d.Queue, device string) (*c2d.Message, func(c2d.Settlement) error) {
	t.Helper()
	ctx := context.Background()
	m, jm, err := q.Next(ctx, "hub1", device, "", settings, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m == nil {
		return nil, nil
	}
	return m, func(s c2d.Settlement) error { return q.SettleDelivery(ctx, jm, s) }
}

// feedback reads records until want arrived (or 5 s passed), completing
// each batch.
func feedback(t *testing.T, q *c2d.Queue, want int) []c2d.FeedbackRecord {
	t.Helper()
	ctx := context.Background()
	var got []c2d.FeedbackRecord
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		b, err := q.ReceiveFeedback(ctx, "hub1", c2d.FeedbackSettings{}, 100, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			continue
		}
		got = append(got, b.Records...)
		if err := q.SettleFeedback(ctx, b, c2d.Complete); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

func TestFeedbackForEveryOutcome(t *testing.T) {
	q, clk := newQueue(t)
	ctx := context.Background()
	send := func(device, id, ack string, ttl time.Duration) {
		t.Helper()
		m := c2d.Message{MessageID: id, Ack: ack, Payload: []byte(id)}
		if ttl > 0 {
			m.Expiry = clk.now().Add(ttl)
		}
		if err := q.Send(ctx, "hub1", device, "", m, settings); err != nil {
			t.Fatal(err)
		}
	}
	send("completer", "m-full", "full", 0)
	send("completer", "m-positive", "positive", 0)
	send("completer", "m-none", "", 0)
	send("rejecter", "m-rejected", "negative", 0)
	send("rejecter", "m-rejected-positive", "positive", 0) // no record: positive only
	send("abandoner", "m-abandoned", "full", 0)
	send("expirer", "m-expired", "negative", time.Minute)

	for range 3 {
		m, settle := next(t, q, "completer")
		if m == nil {
			t.Fatal("completer: no message")
		}
		if err := settle(c2d.Complete); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		_, settle := next(t, q, "rejecter")
		if err := settle(c2d.Reject); err != nil {
			t.Fatal(err)
		}
	}
	// maxDeliveryCount 2: the second abandon dead-letters it.
	for i := range 2 {
		m, settle := next(t, q, "abandoner")
		if m == nil || m.DeliveryCount != i+1 {
			t.Fatalf("abandoner delivery %d: %+v", i, m)
		}
		if err := settle(c2d.Abandon); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := next(t, q, "abandoner"); m != nil {
		t.Fatalf("abandoned beyond maxDeliveryCount, still delivered: %+v", m)
	}
	clk.add(2 * time.Minute)
	if m, _ := next(t, q, "expirer"); m != nil {
		t.Fatalf("expired message delivered: %+v", m)
	}

	recs := feedback(t, q, 5)
	byID := map[string]c2d.FeedbackRecord{}
	for _, r := range recs {
		byID[r.OriginalMessageID] = r
	}
	want := map[string]string{"m-full": "Success", "m-positive": "Success", "m-rejected": "Rejected",
		"m-abandoned": "DeliveryCountExceeded", "m-expired": "Expired"}
	if len(recs) != len(want) {
		t.Fatalf("records %+v, want %v", recs, want)
	}
	for id, status := range want {
		r, ok := byID[id]
		if !ok || r.StatusCode != status || r.Description == "" || r.EnqueuedTimeUTC.IsZero() {
			t.Errorf("record for %s: %+v, want status %s", id, r, status)
		}
		if r.DeviceGenerationID != "gen-"+r.DeviceID {
			t.Errorf("record for %s: generation %q", id, r.DeviceGenerationID)
		}
	}
	if byID["m-full"].DeviceID != "completer" || byID["m-expired"].DeviceID != "expirer" {
		t.Errorf("device ids: %+v", recs)
	}
}

func TestFeedbackLockTokenPathAndBatchSettlement(t *testing.T) {
	q, _ := newQueue(t)
	ctx := context.Background()
	// The HTTPS transport settles by lock token (Hold, then Settle).
	for _, id := range []string{"a", "b"} {
		if err := q.Send(ctx, "hub1", "dev", "", c2d.Message{MessageID: id, Ack: "full", GenerationID: "g1"}, settings); err != nil {
			t.Fatal(err)
		}
	}
	for _, how := range []string{"complete", "reject"} {
		m, jm, err := q.Next(ctx, "hub1", "dev", "", settings, 2*time.Second)
		if err != nil || m == nil {
			t.Fatalf("next: %v %v", m, err)
		}
		q.Hold(m.LockToken, jm)
		if err := q.Settle(m.LockToken, how); err != nil {
			t.Fatal(err)
		}
		if err := q.Settle(m.LockToken, how); !errors.Is(err, c2d.ErrLockLost) {
			t.Fatalf("settling twice: %v", err)
		}
	}
	// Both records come in one batch; abandoning it delivers them again.
	var b *c2d.FeedbackBatch
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		b, err = q.ReceiveFeedback(ctx, "hub1", c2d.FeedbackSettings{}, 100, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if b != nil && len(b.Records) == 2 {
			break
		}
		if b != nil {
			_ = q.SettleFeedback(ctx, b, c2d.Abandon)
		}
	}
	if b == nil || len(b.Records) != 2 || b.Records[0].DeviceGenerationID != "g1" {
		t.Fatalf("batch %+v", b)
	}
	if err := q.SettleFeedback(ctx, b, c2d.Abandon); err != nil {
		t.Fatal(err)
	}
	again, err := q.ReceiveFeedback(ctx, "hub1", c2d.FeedbackSettings{}, 100, 2*time.Second)
	if err != nil || again == nil || len(again.Records) != 2 || again.DeliveryCount < 2 {
		t.Fatalf("after abandon: %+v %v", again, err)
	}
	if err := q.SettleFeedback(ctx, again, c2d.Complete); err != nil {
		t.Fatal(err)
	}
	if b, err := q.ReceiveFeedback(ctx, "hub1", c2d.FeedbackSettings{}, 100, 300*time.Millisecond); err != nil || b != nil {
		t.Fatalf("after complete: %+v %v", b, err)
	}
}

func TestQueueFullAndRemoveHub(t *testing.T) {
	q, _ := newQueue(t)
	ctx := context.Background()
	for i := range c2d.MaxQueuedPerDevice {
		if err := q.Send(ctx, "hub1", "full", "", c2d.Message{Payload: []byte{byte(i)}}, settings); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Send(ctx, "hub1", "full", "", c2d.Message{}, settings); !errors.Is(err, c2d.ErrQueueFull) {
		t.Fatalf("51st message: %v", err)
	}
	if err := q.RemoveHub(ctx, "hub1"); err != nil {
		t.Fatal(err)
	}
	if err := q.EnsureHub(ctx, "hub1"); err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, "hub1", "full", "", c2d.Message{}, settings); err != nil {
		t.Fatalf("after removing the hub: %v", err)
	}
}
