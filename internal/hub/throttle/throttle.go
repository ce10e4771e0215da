package throttle

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrThrottled means a hub (or a device) is over one of its configured
// rates; errors.Is matches every *Error.
var ErrThrottled = errors.New("throttle: the IoT hub is over its rate")

// Kind names one of IoT Hub's throttles.
type Kind string

// The throttles, as IoT Hub's "quotas and throttling" lists them.
const (
	HubD2C     Kind = "d2c"         // device-to-cloud messages of a hub
	DeviceD2C  Kind = "device_d2c"  // device-to-cloud messages of one device
	Registry   Kind = "registry"    // device identity operations (create, read, update, delete, list)
	TwinRead   Kind = "twin_read"   // twin reads (service and device side)
	TwinUpdate Kind = "twin_update" // twin updates (service: tags and desired; device: reported)
	Method     Kind = "method"      // direct method invocations
)

// Kinds lists every throttle kind (for metrics and documentation).
var Kinds = []Kind{HubD2C, DeviceD2C, Registry, TwinRead, TwinUpdate, Method}

// Limits are the rates, each per second; 0 turns that throttle off.
type Limits struct {
	HubD2C      float64
	DeviceD2C   float64
	Registry    float64
	TwinReads   float64
	TwinUpdates float64
	Methods     float64
}

func (l Limits) of(k Kind) float64 {
	switch k {
	case HubD2C:
		return l.HubD2C
	case DeviceD2C:
		return l.DeviceD2C
	case Registry:
		return l.Registry
	case TwinRead:
		return l.TwinReads
	case TwinUpdate:
		return l.TwinUpdates
	case Method:
		return l.Methods
	}
	return 0
}

// flags name the serve flag of each kind, for messages a person acts on.
var flags = map[Kind]string{
	HubD2C: "--hub-d2c-rate", DeviceD2C: "--device-d2c-rate", Registry: "--hub-registry-rate",
	TwinRead: "--hub-twin-read-rate", TwinUpdate: "--hub-twin-update-rate", Method: "--hub-method-rate",
}

var what = map[Kind]string{
	HubD2C: "device-to-cloud message", DeviceD2C: "per-device device-to-cloud message",
	Registry: "device identity operation", TwinRead: "twin read", TwinUpdate: "twin update", Method: "direct method",
}

// Error is a refusal: which throttle, and of which hub.
type Error struct {
	Kind Kind
	Hub  string
}

func (e *Error) Error() string {
	who := "The IoT hub"
	if e.Kind == DeviceD2C {
		who = "The device"
	}
	return fmt.Sprintf("%s is over its %s rate; retry later, or raise the limit (%s).", who, what[e.Kind], flags[e.Kind])
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *Error) Is(target error) bool { return target == ErrThrottled }

// perHub reports whether a kind's rate is the whole installation's (shared
// among the nodes) rather than one device's.
func perHub(k Kind) bool { return k != DeviceD2C }

// sweepEvery is how often idle buckets are dropped.
const sweepEvery = time.Minute

type bucketKey struct {
	kind   Kind
	hub    string
	device string
}

type bucket struct {
	lim   *rate.Limiter
	share float64 // the per-second rate lim was set to
}

// Limiter holds the token buckets of one node.
type Limiter struct {
	limits  Limits
	nodes   atomic.Int64 // live nodes sharing the per-hub rates; at least 1
	now     func() time.Time
	refused func(Kind) // counts refusals (metrics); may be nil

	mu        sync.Mutex
	buckets   map[bucketKey]*bucket
	lastSweep time.Time
}

// New returns a limiter for one node of a single-node installation (see
// SetNodes); refused, when not nil, is told of every refusal.
func New(limits Limits, refused func(Kind)) *Limiter {
	l := &Limiter{limits: limits, now: time.Now, refused: refused, buckets: map[bucketKey]*bucket{}}
	l.nodes.Store(1)
	return l
}

// Enabled reports whether any throttle is on.
func (l *Limiter) Enabled() bool { return l != nil && l.limits != Limits{} }

// SetNodes sets how many live nodes share the per-hub rates; each node
// takes an equal share. Buckets adopt the new share at their next use.
func (l *Limiter) SetNodes(n int) {
	if l != nil {
		l.nodes.Store(int64(max(n, 1)))
	}
}

// Nodes is how many nodes this limiter currently shares the rates with.
func (l *Limiter) Nodes() int { return int(l.nodes.Load()) }

// Allow takes one token from the bucket of kind for hub (and for
// DeviceD2C, of device; moduleless and module identities alike are one
// "device" to IoT Hub's per-device quota). It returns an *Error over the
// rate, nil otherwise or when the throttle is off.
func (l *Limiter) Allow(kind Kind, hub, device string) error {
	if l == nil {
		return nil
	}
	r := l.limits.of(kind)
	if r <= 0 {
		return nil
	}
	hub = strings.ToLower(hub)
	if perHub(kind) {
		r /= float64(l.nodes.Load())
		device = ""
	}
	now := l.now()
	key := bucketKey{kind: kind, hub: hub, device: device}
	l.mu.Lock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(r), burst(r)), share: r}
		l.buckets[key] = b
	} else if b.share != r {
		b.lim.SetLimitAt(now, rate.Limit(r))
		b.lim.SetBurstAt(now, burst(r))
		b.share = r
	}
	allowed := b.lim.AllowN(now, 1)
	l.mu.Unlock()
	if allowed {
		return nil
	}
	if l.refused != nil {
		l.refused(kind)
	}
	return &Error{Kind: kind, Hub: hub}
}

// burst is one second's worth of a rate, at least one token.
func burst(perSecond float64) int { return max(int(perSecond), 1) }

// sweep drops buckets that are full: a new bucket starts full, so dropping
// them changes nothing but the memory they hold. Called with mu held.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
			delete(l.buckets, k)
		}
	}
}

// size is how many buckets are held (tests).
func (l *Limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
