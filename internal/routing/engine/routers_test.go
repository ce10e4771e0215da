package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/routing/engine"
)

const allToEvents = `{"routes": [{"name": "all", "source": "DeviceMessages", "condition": "true", "endpointNames": ["events"], "isEnabled": true}],
  "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true", "endpointNames": ["events"], "isEnabled": false}}`

// TestRoutersTakeOverFromTheLegacyConsumer: a hub stored before each
// partition had its own router had one consumer, "router"; the new
// routers start after what it acknowledged (nothing routed twice, nothing
// skipped) and it is deleted.
func TestRoutersTakeOverFromTheLegacyConsumer(t *testing.T) {
	f := newFixture(t)
	const hub = "hublegacy"
	f.paths[hub] = telemetry.PathRouter
	if err := f.stream.EnsureHub(f.ctx, hub, 1); err != nil {
		t.Fatal(err)
	}
	js, stream := f.bus.JetStream(), f.bus.Stream(telemetry.StreamName(hub))
	legacy, err := js.CreateOrUpdateConsumer(f.ctx, stream, jetstream.ConsumerConfig{
		Durable: "router", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: f.bus.Subject(telemetry.RouterSubject(hub))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		f.publish(hub, 2, fmt.Sprintf("dev%d", i), fmt.Sprintf(`{"i":%d}`, i), nil)
	}
	// The legacy router routed (and acknowledged) the first three.
	batch, err := legacy.Fetch(3, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.hub(hubSpec{name: hub, routing: allToEvents})
	var got []telemetry.Message
	waitFor(t, 10*time.Second, "three messages on the built-in endpoint", func() bool { got = f.builtIn(hub); return len(got) >= 3 })
	time.Sleep(300 * time.Millisecond)
	got = f.builtIn(hub)
	seen := map[string]bool{}
	for _, m := range got {
		seen[string(m.Payload)] = true
	}
	if len(got) != 3 || !seen[`{"i":3}`] || !seen[`{"i":4}`] || !seen[`{"i":5}`] {
		t.Errorf("built-in endpoint after the move: %d messages %v, want the three the legacy router had not acknowledged", len(got), seen)
	}
	if _, err := js.Consumer(f.ctx, stream, "router"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("legacy router consumer after the move: %v", err)
	}
}

// TestEachSlotRoutedByItsOwner: two engines (two nodes) share a hub's
// routers, each working only the slots Owns gives it — every message is
// routed once, partition 0 by one node and partition 1 by the other.
func TestEachSlotRoutedByItsOwner(t *testing.T) {
	f := newFixture(t, func(c *engine.Config) {
		c.Owns = func(_ string, slot int) bool { return slot%2 == 0 }
		c.OwnershipPoll = 50 * time.Millisecond
	})
	cfg := f.cfg
	cfg.Owns = func(_ string, slot int) bool { return slot%2 == 1 }
	other, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- other.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const hub = "hubshared"
	f.hub(hubSpec{name: hub, routing: allToEvents})
	other.Reload(hub)
	f.waitRouter(hub)
	devices := map[int]string{}
	for i := 0; len(devices) < 2; i++ {
		d := fmt.Sprintf("dev%d", i)
		devices[telemetry.Partition(d, 2)] = d
	}
	for i := range 20 {
		f.publish(hub, 2, devices[i%2], fmt.Sprintf(`{"i":%d}`, i), nil)
	}
	waitFor(t, 10*time.Second, "20 messages on the built-in endpoint", func() bool { return len(f.builtIn(hub)) >= 20 })
	time.Sleep(300 * time.Millisecond)
	if n := len(f.builtIn(hub)); n != 20 {
		t.Errorf("built-in endpoint has %d messages, want 20 (each routed once)", n)
	}
	a, b := f.engine.Stats(hub), other.Stats(hub)
	if a.Messages != 10 || b.Messages != 10 {
		t.Errorf("messages routed by the owner of partition 0: %d, of partition 1: %d; want 10 each", a.Messages, b.Messages)
	}
}
