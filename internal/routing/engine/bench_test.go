package engine_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
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
		w, err := f.stream.PublishAsync(4, telemetry.PathRouter, telemetry.Message{Hub: "hubbench", DeviceID: fmt.Sprintf("dev%d", i%100), Payload: body, System: sys, App: app})
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

// BenchmarkRouteLatency publishes at a fixed rate (OUTPOST_ROUTE_RATE,
// default 8,000 msgs/s — about half the sustained throughput measured by
// BenchmarkRouteToEventHub on the 2-core reference machine) for b.N
// messages and reports the p50/p99 of enqueue → stored in the event hub:
// the message's iothub-enqueuedtime against the event's enqueued time.
func BenchmarkRouteLatency(b *testing.B) {
	f := newFixture(b, func(c *engine.Config) {
		c.RetryBase, c.RetryMax = 100*time.Millisecond, time.Second
	})
	ehID, _ := f.eventHub("ehns-lat", "eh")
	p := f.hub(hubSpec{name: "hublat", partitions: 4, system: true, routing: ehRouting("ep1", "ehns-lat", "eh", "", "true")})
	f.assign(p, roleEventHubsSender, ehID)
	rate := 8000.0
	if v, err := strconv.ParseFloat(os.Getenv("OUTPOST_ROUTE_RATE"), 64); err == nil && v > 0 {
		rate = v
	}
	body := []byte(`{"temperature":21.5}`)
	sys := map[string]string{telemetry.PropContentType: "application/json", telemetry.PropContentEncoding: "utf-8"}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		if _, err := f.stream.PublishAsync(4, telemetry.PathRouter, telemetry.Message{Hub: "hublat", DeviceID: fmt.Sprintf("dev%d", i%100), Payload: body, System: sys}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for f.health("hublat", "ep1").Delivered < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", f.health("hublat", "ep1").Delivered, b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	var lat []time.Duration
	for _, e := range f.readEvents("ehns-lat", "eh") {
		// IoT Hub stamps iothub-enqueuedtime as epoch milliseconds on routed events.
		ms, ok := e.Properties[telemetry.PropEnqueuedTime].(float64)
		if !ok {
			continue
		}
		lat = append(lat, e.EnqueuedTime.Sub(time.UnixMilli(int64(ms))))
	}
	if len(lat) == 0 {
		evs := f.readEvents("ehns-lat", "eh")
		if len(evs) > 0 {
			b.Fatalf("no latencies; an event's properties: %v", evs[0].Properties)
		}
		b.Fatal("no events")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(rate, "rate/s")
}
