package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/store"
)

// Message is what a route condition sees: the stored message and the
// routing source it came from (DeviceMessages, TwinChangeEvents, …).
type Message struct {
	telemetry.Message
	Source string
	// Scratch is the conditions' own state, carried from message to message
	// by the router: the routing query language keeps its evaluation input
	// there, so a message's body is parsed once whatever the number of
	// routes, and the buffers are reused for the next message.
	Scratch any
}

// Condition is a compiled route condition.
type Condition interface {
	Match(m *Message) bool
}

// Compiler compiles a route condition once per configuration change. The
// app plugs in the routing query language; an error makes the route match
// nothing (and is logged), since the hub resource validated it on save.
type Compiler func(condition string) (Condition, error)

// Doer sends an HTTP request: *egress.Client, and azcore's
// policy.Transporter is the same method.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// TokenSource mints tokens for a resource's managed identity — its
// system-assigned one, or the user-assigned one named by userAssignedID —
// for an audience such as "https://eventhubs.azure.net/". *app.App
// implements it.
type TokenSource interface {
	ManagedIdentityToken(ctx context.Context, resourceID, userAssignedID, resource string) (string, error)
}

// ResourceLister lists stored resources; store.Resources implements it.
// The engine reads hub documents (Microsoft.Devices/IotHubs) from it.
type ResourceLister interface {
	List(ctx context.Context, filter store.ResourceFilter) ([]store.Resource, error)
}

// TwinReader returns a device's (or module's) twin as JSON, for $twin
// enrichments. Optional: without it, $twin enrichments stamp their
// expression verbatim, as IoT Hub does for a path it can't resolve.
type TwinReader interface {
	Twin(ctx context.Context, hub, deviceID, moduleID string) ([]byte, error)
}

// Config holds the engine's dependencies and tuning. Zero durations take
// the defaults of Default.
type Config struct {
	Bus       *bus.Bus
	Resources ResourceLister
	Egress    Doer
	Tokens    TokenSource
	// Compile compiles route conditions. Nil accepts only "true" and
	// "false" (and an empty condition, which is true).
	Compile Compiler
	Twins   TwinReader
	Log     *slog.Logger
	Now     func() time.Time
	// Owns says whether this node works slot of a hub: slots 0…P-1 are its
	// partitions (router and endpoint workers), the slots after them its
	// event sources (routerSlot). Nil: this node works every slot (one
	// node). throttle.Membership.Owns spreads the slots over the nodes.
	Owns func(hub string, slot int) bool
	// OwnershipPoll is how often a node that doesn't own a slot checks
	// again (500 ms).
	OwnershipPoll time.Duration

	// MinBatchFrequency is the lowest storage batchFrequencyInSeconds the
	// engine honours (Azure's minimum, 60 s, by default); tests lower it
	// so a storage window closes in a second.
	MinBatchFrequency time.Duration
	// MaxBatchMessages and MaxBatchBytes bound one Event Hubs / Service
	// Bus REST batch (100 messages, 256 KB).
	MaxBatchMessages int
	MaxBatchBytes    int
	// RetryBase and RetryMax shape the exponential backoff of a failing
	// endpoint (1 s doubling up to 30 s).
	RetryBase time.Duration
	RetryMax  time.Duration
	// UnhealthyAfter and UnhealthyAttempts: an endpoint failing for longer
	// than this, or this many attempts in a row, is unhealthy; before that
	// it is degraded (5 min, 10 attempts).
	UnhealthyAfter    time.Duration
	UnhealthyAttempts int
	// DeadAfter: an endpoint failing for longer is reported dead (its
	// messages are still kept and retried until the hub's retention drops
	// them). Default 24 h.
	DeadAfter time.Duration
	// SendTimeout bounds one REST batch or blob upload (30 s).
	SendTimeout time.Duration
	// TokenRefreshMargin: a cached token is replaced this long before its
	// exp claim (5 min).
	TokenRefreshMargin time.Duration
	// RouterBatch bounds the messages the router takes from a hub's stream
	// at once, and so how many are in flight unacknowledged (500).
	RouterBatch int
	// MetricsBucket is the width of one bucket of a hub's routing history
	// (messages per route and endpoint, endpoint health), and
	// MetricsBuckets how many buckets are kept (1 min, 60: the last hour).
	MetricsBucket  time.Duration
	MetricsBuckets int
	// StorageMaxPending bounds the messages a storage endpoint holds
	// while its window is open; reaching it closes the window early
	// (100,000).
	StorageMaxPending int
}

// Default returns the production tuning.
func Default() Config {
	return Config{
		MinBatchFrequency: 60 * time.Second,
		MaxBatchMessages:  100,
		MaxBatchBytes:     256 * 1024,
		RetryBase:         time.Second,
		RetryMax:          30 * time.Second,
		UnhealthyAfter:    5 * time.Minute,
		UnhealthyAttempts: 10,
		DeadAfter:         24 * time.Hour,
		SendTimeout:       30 * time.Second,

		TokenRefreshMargin: 5 * time.Minute,
		RouterBatch:        500,
		OwnershipPoll:      500 * time.Millisecond,
		StorageMaxPending:  100000,
		MetricsBucket:      time.Minute,
		MetricsBuckets:     60,
	}
}

// withDefaults fills zero tuning fields from Default.
func (c Config) withDefaults() Config {
	d := Default()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur(&c.MinBatchFrequency, d.MinBatchFrequency)
	setInt(&c.MaxBatchMessages, d.MaxBatchMessages)
	setInt(&c.MaxBatchBytes, d.MaxBatchBytes)
	setDur(&c.RetryBase, d.RetryBase)
	setDur(&c.RetryMax, d.RetryMax)
	setDur(&c.UnhealthyAfter, d.UnhealthyAfter)
	setInt(&c.UnhealthyAttempts, d.UnhealthyAttempts)
	setDur(&c.DeadAfter, d.DeadAfter)
	setDur(&c.SendTimeout, d.SendTimeout)
	setDur(&c.TokenRefreshMargin, d.TokenRefreshMargin)
	setInt(&c.RouterBatch, d.RouterBatch)
	setDur(&c.OwnershipPoll, d.OwnershipPoll)
	setInt(&c.StorageMaxPending, d.StorageMaxPending)
	setDur(&c.MetricsBucket, d.MetricsBucket)
	setInt(&c.MetricsBuckets, d.MetricsBuckets)
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Compile == nil {
		c.Compile = constantConditions
	}
	if c.Owns == nil {
		c.Owns = func(string, int) bool { return true }
	}
	return c
}

// Validate reports every missing dependency at once.
func (c Config) Validate() error {
	var errs []error
	if c.Bus == nil {
		errs = append(errs, errors.New("Bus is required"))
	}
	if c.Resources == nil {
		errs = append(errs, errors.New("Resources is required (the store holding hub documents)"))
	}
	if c.Egress == nil {
		errs = append(errs, errors.New("Egress is required (the HTTP client endpoints are reached through)"))
	}
	if c.Tokens == nil {
		errs = append(errs, errors.New("Tokens is required (managed identity tokens for identity-based endpoints)"))
	}
	if c.RetryMax > 0 && c.RetryBase > c.RetryMax {
		errs = append(errs, fmt.Errorf("RetryBase %s is above RetryMax %s", c.RetryBase, c.RetryMax))
	}
	return errors.Join(errs...)
}

// constantConditions is the compiler used when none is configured: it
// knows only the constants, so a hub's routes work before the query
// language is wired in, and anything else is reported.
func constantConditions(condition string) (Condition, error) {
	switch strings.ToLower(strings.TrimSpace(condition)) {
	case "", "true":
		return constant(true), nil
	case "false":
		return constant(false), nil
	}
	return nil, fmt.Errorf("no route condition compiler is configured; only 'true' and 'false' can be evaluated, not %q", condition)
}

type constant bool

func (c constant) Match(*Message) bool { return bool(c) }
