package eventhubs

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
)

// directory caches namespace snapshots by lower-cased name, absent ones
// included (Serves is asked on every request to the shared servicebus
// host). A snapshot lives ttl, or until Invalidate: the control plane on
// this node invalidates on every change, other nodes' changes show within
// ttl. Concurrent misses may load the same namespace twice; both results
// are equally fresh.
type directory struct {
	resources ehresource.Reader
	ttl       time.Duration
	now       func() time.Time

	mu      sync.RWMutex
	entries map[string]cached
	// gen counts invalidations: a load that overlapped one is returned but
	// not cached, so a snapshot read before a change never outlives it.
	gen uint64
}

type cached struct {
	view *ehresource.NamespaceView // nil: no such namespace
	at   time.Time
}

func newDirectory(r ehresource.Reader, ttl time.Duration, now func() time.Time) *directory {
	return &directory{resources: r, ttl: ttl, now: now, entries: map[string]cached{}}
}

// get returns the namespace snapshot, nil when there is no such namespace.
func (d *directory) get(ctx context.Context, name string) (*ehresource.NamespaceView, error) {
	key := strings.ToLower(name)
	now := d.now()
	d.mu.RLock()
	c, ok := d.entries[key]
	gen := d.gen
	d.mu.RUnlock()
	if ok && now.Sub(c.at) < d.ttl {
		return c.view, nil
	}
	view, found, err := ehresource.LoadNamespace(ctx, d.resources, name)
	if err != nil {
		return nil, err
	}
	if !found {
		view = nil
	}
	d.mu.Lock()
	if d.gen == gen {
		d.entries[key] = cached{view: view, at: now}
	}
	d.mu.Unlock()
	return view, nil
}

// invalidate drops a namespace's snapshot.
func (d *directory) invalidate(name string) {
	d.mu.Lock()
	delete(d.entries, strings.ToLower(name))
	d.gen++
	d.mu.Unlock()
}
