package engine

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Health states of an endpoint, as routingEndpointsHealth reports them.
const (
	// StatusUnknown: nothing was sent to the endpoint yet.
	StatusUnknown = "unknown"
	// StatusHealthy: the last send succeeded.
	StatusHealthy = "healthy"
	// StatusDegraded: sends are failing and being retried, for less than
	// UnhealthyAfter and fewer than UnhealthyAttempts attempts.
	StatusDegraded = "degraded"
	// StatusUnhealthy: sends have failed longer or more often than that.
	StatusUnhealthy = "unhealthy"
	// StatusDead: sends have failed for longer than DeadAfter. Unlike
	// Azure, messages are still kept and retried, until the hub's
	// retention drops them.
	StatusDead = "dead"
)

// EndpointHealth is one endpoint's health. It marshals as an element of
// GET …/routingEndpointsHealth's value array (times in RFC 1123).
type EndpointHealth struct {
	EndpointID                    string
	Name                          string
	Status                        string
	LastKnownError                string
	LastKnownErrorTime            time.Time
	LastSuccessfulSendAttemptTime time.Time
	LastSendAttemptTime           time.Time
	// Attempts is the number of failed attempts in a row.
	Attempts int
	// Delivered counts the messages this process delivered.
	Delivered int64
	// Failed counts the send attempts that failed in this process (a
	// failed batch is one attempt).
	Failed int64
}

// MarshalJSON renders the ARM EndpointHealthData shape.
func (h EndpointHealth) MarshalJSON() ([]byte, error) {
	rfc := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(http.TimeFormat)
	}
	return json.Marshal(struct {
		EndpointID                    string `json:"endpointId"`
		HealthStatus                  string `json:"healthStatus"`
		LastKnownError                string `json:"lastKnownError,omitempty"`
		LastKnownErrorTime            string `json:"lastKnownErrorTime,omitempty"`
		LastSuccessfulSendAttemptTime string `json:"lastSuccessfulSendAttemptTime,omitempty"`
		LastSendAttemptTime           string `json:"lastSendAttemptTime,omitempty"`
	}{h.EndpointID, h.Status, h.LastKnownError, rfc(h.LastKnownErrorTime), rfc(h.LastSuccessfulSendAttemptTime), rfc(h.LastSendAttemptTime)})
}

// healthTracker follows one endpoint. It outlives the endpoint's worker, so
// a configuration change keeps the history.
type healthTracker struct {
	mu sync.Mutex
	h  EndpointHealth
	// failingSince is the first failure of the current run of failures.
	failingSince time.Time
	// record adds each send's outcome to the hub's history; it is called
	// without t.mu held (the history reads every tracker when it closes a
	// bucket). Nil records nothing.
	record func(now time.Time, endpoint string, delivered, failed int64)
}

func newHealthTracker(ep *Endpoint, record func(now time.Time, endpoint string, delivered, failed int64)) *healthTracker {
	return &healthTracker{h: EndpointHealth{EndpointID: ep.ID, Name: ep.Name, Status: StatusUnknown}, record: record}
}

func (t *healthTracker) success(now time.Time, n int) {
	name := t.succeeded(now, n)
	if t.record != nil {
		t.record(now, name, int64(n), 0)
	}
}

func (t *healthTracker) succeeded(now time.Time, n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.h.Status = StatusHealthy
	t.h.LastSendAttemptTime, t.h.LastSuccessfulSendAttemptTime = now, now
	t.h.Attempts = 0
	t.h.Delivered += int64(n)
	t.failingSince = time.Time{}
	return t.h.Name
}

// failure records a failed send attempt; the history counts attempts, not
// messages (a failed batch is retried whole).
func (t *healthTracker) failure(now time.Time, err error, cfg *Config) {
	name := t.failed(now, err, cfg)
	if t.record != nil {
		t.record(now, name, 0, 1)
	}
}

func (t *healthTracker) failed(now time.Time, err error, cfg *Config) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failingSince.IsZero() {
		t.failingSince = now
	}
	t.h.Attempts++
	t.h.Failed++
	t.h.LastSendAttemptTime, t.h.LastKnownErrorTime = now, now
	t.h.LastKnownError = err.Error()
	failing := now.Sub(t.failingSince)
	switch {
	case failing > cfg.DeadAfter:
		t.h.Status = StatusDead
	case failing > cfg.UnhealthyAfter || t.h.Attempts >= cfg.UnhealthyAttempts:
		t.h.Status = StatusUnhealthy
	default:
		t.h.Status = StatusDegraded
	}
	return t.h.Name
}

// problem records a configuration problem (the endpoint can't be used).
func (t *healthTracker) problem(now time.Time, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.h.Status = StatusUnhealthy
	t.h.LastKnownError, t.h.LastKnownErrorTime = msg, now
}

func (t *healthTracker) rename(ep *Endpoint) {
	t.mu.Lock()
	t.h.EndpointID, t.h.Name = ep.ID, ep.Name
	t.mu.Unlock()
}

func (t *healthTracker) snapshot() EndpointHealth {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.h
}
