package throttle

import (
	"errors"
	"strings"
	"sync"

	"golang.org/x/time/rate"
)

// ErrThrottled means the hub is over its configured rate.
var ErrThrottled = errors.New("throttle: the IoT hub is over its device-to-cloud message rate")

// Limiter holds one token bucket per hub.
type Limiter struct {
	perSecond float64
	mu        sync.Mutex
	hubs      map[string]*rate.Limiter
}

// New returns a limiter; perSecond 0 turns it off.
func New(perSecond float64) *Limiter {
	return &Limiter{perSecond: perSecond, hubs: map[string]*rate.Limiter{}}
}

// Allow takes one message from hub's bucket (burst: one second's worth).
func (l *Limiter) Allow(hub string) error {
	if l == nil || l.perSecond <= 0 {
		return nil
	}
	hub = strings.ToLower(hub)
	l.mu.Lock()
	lim, ok := l.hubs[hub]
	if !ok {
		burst := int(l.perSecond)
		if burst < 1 {
			burst = 1
		}
		lim = rate.NewLimiter(rate.Limit(l.perSecond), burst)
		l.hubs[hub] = lim
	}
	l.mu.Unlock()
	if !lim.Allow() {
		return ErrThrottled
	}
	return nil
}
