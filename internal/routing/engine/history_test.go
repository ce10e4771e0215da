package engine

import (
	"errors"
	"testing"
	"time"
)

// TestHistoryBuckets: route matches, deliveries, failed attempts and the
// health at each bucket's end land in the bucket they happened in; idle
// buckets are filled in and only the last size buckets are kept.
func TestHistoryBuckets(t *testing.T) {
	h := newHistory(time.Second, 4)
	p := &Plan{routes: map[string][]route{SourceDeviceMessages: {{name: "Hot", endpoint: "alerts"}}},
		fallback: &route{name: "$fallback", endpoint: BuiltInEndpoint}}
	h.bind(p)
	tr := newHealthTracker(&Endpoint{Name: "Alerts", ID: "Alerts"}, func(now time.Time, ep string, d, f int64) {
		h.endpoint(now, ep, d, f, nil)
	})
	statuses := func() map[string]endpointStatus {
		s := tr.snapshot()
		return map[string]endpointStatus{"alerts": {name: s.Name, status: s.Status}}
	}
	tr.record = func(now time.Time, ep string, d, f int64) { h.endpoint(now, ep, d, f, statuses) }
	t0 := time.Unix(1_000_000, 0)
	h.tick(t0, statuses)
	for range 3 {
		p.routes[SourceDeviceMessages][0].counter.add()
	}
	p.fallback.counter.add()
	h.builtIn.Add(1)
	tr.success(t0.Add(100*time.Millisecond), 3)
	cfg := Default()
	h.tick(t0.Add(time.Second), statuses)
	tr.failure(t0.Add(1500*time.Millisecond), errors.New("refused"), &cfg)
	tr.failure(t0.Add(1600*time.Millisecond), errors.New("refused"), &cfg)

	m := h.snapshot(t0.Add(1700*time.Millisecond), statuses)
	if len(m.Buckets) != 2 || m.Bucket != time.Second {
		t.Fatalf("buckets: %+v", m)
	}
	b0, b1 := m.Buckets[0], m.Buckets[1]
	if !b0.Start.Equal(t0) || b0.Routes["Hot"] != 3 || b0.Routes["$fallback"] != 1 {
		t.Errorf("bucket 0 routes: %+v", b0)
	}
	if got := b0.Endpoints["Alerts"]; got != (EndpointMetrics{Delivered: 3, Status: StatusHealthy}) {
		t.Errorf("bucket 0 Alerts: %+v", got)
	}
	if got := b0.Endpoints[BuiltInEndpoint]; got.Delivered != 1 {
		t.Errorf("bucket 0 events: %+v", got)
	}
	if got := b1.Endpoints["Alerts"]; got != (EndpointMetrics{Failed: 2, Status: StatusDegraded}) || b1.Routes["Hot"] != 0 {
		t.Errorf("bucket 1: %+v", b1)
	}
	// Ten idle seconds later: four buckets kept, the last three idle with
	// the status unchanged.
	m = h.snapshot(t0.Add(11*time.Second), statuses)
	if len(m.Buckets) != 4 {
		t.Fatalf("kept %d buckets, want 4", len(m.Buckets))
	}
	for i, b := range m.Buckets {
		if want := t0.Add(time.Duration(8+i) * time.Second); !b.Start.Equal(want) {
			t.Errorf("bucket %d starts %s, want %s", i, b.Start, want)
		}
		if got := b.Endpoints["Alerts"]; got != (EndpointMetrics{Status: StatusDegraded}) {
			t.Errorf("idle bucket %d: %+v", i, got)
		}
	}
	// A new plan without the route: idle buckets leave it out.
	h.bind(&Plan{routes: map[string][]route{}})
	m = h.snapshot(t0.Add(12*time.Second), statuses)
	if _, ok := m.Buckets[len(m.Buckets)-1].Routes["Hot"]; ok {
		t.Errorf("a removed route in an idle bucket: %+v", m.Buckets[len(m.Buckets)-1])
	}
}
