package engine_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/routing/engine"
)

// BenchmarkRouteToEventHub: sustained device publish → routing →
// identity-based Event Hubs delivery (REST batches through TLS into
// Outpost's own Event Hubs, which stores every event in JetStream), all in
// one process. Reports routed messages per second.
func BenchmarkRouteToEventHub(b *testing.B) {
	f := newFixture(b, func(c *engine.Config) {
		c.RetryBase, c.RetryMax = 100*time.Millisecond, time.Second
	})
	ehID, _ := f.eventHub("ehns-bench", "eh")
	p := f.hub(hubSpec{name: "hubbench", partitions: 4, system: true, routing: ehRouting("ep1", "ehns-bench", "eh", "", "true")})
	f.assign(p, roleEventHubsSender, ehID)
	body := []byte(`{"temperature":21.5,"humidity":60,"device":"sensor"}`)
	sys := map[string]string{telemetry.PropContentType: "application/json", telemetry.PropContentEncoding: "utf-8",
		telemetry.PropAuthMethod: `{"scope":"device","type":"sas","issuer":"iothub"}`}
	app := map[string]string{"level": "info"}

	b.ResetTimer()
	start := time.Now()
	waits := make([]func(context.Context) error, 0, 1000)
	for i := 0; i < b.N; i++ {
		w, err := f.stream.PublishAsync(4, telemetry.Message{Hub: "hubbench", DeviceID: fmt.Sprintf("dev%d", i%100), Payload: body, System: sys, App: app})
		if err != nil {
			b.Fatal(err)
		}
		waits = append(waits, w)
		if len(waits) == cap(waits) || i == b.N-1 {
			for _, w := range waits {
				if err := w(f.ctx); err != nil {
					b.Fatal(err)
				}
			}
			waits = waits[:0]
		}
	}
	deadline := time.Now().Add(5*time.Minute + time.Duration(b.N)*time.Millisecond)
	for f.health("hubbench", "ep1").Delivered < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", f.health("hubbench", "ep1").Delivered, b.N)
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
}
