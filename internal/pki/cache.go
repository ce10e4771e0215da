package pki

import (
	"container/list"
	"context"
	"crypto/tls"
	"sync"
	"time"
)

// leafCache keeps minted leaves by key, evicting the least recently used
// beyond max, and makes concurrent requests for a missing key wait for one
// mint instead of each minting their own.
type leafCache struct {
	max int

	mu       sync.Mutex
	entries  map[string]*list.Element // values are *cachedLeaf
	lru      *list.List               // front is the most recently used
	inflight map[string]*mintCall
}

type cachedLeaf struct {
	key     string
	cert    *tls.Certificate
	renewAt time.Time
}

type mintCall struct {
	done chan struct{} // closed when cert and err are set
	cert *tls.Certificate
	err  error
}

func newLeafCache(max int) *leafCache {
	return &leafCache{
		max:      max,
		entries:  make(map[string]*list.Element),
		lru:      list.New(),
		inflight: make(map[string]*mintCall),
	}
}

// get returns the leaf cached under key unless now has reached its renewal
// time, in which case it calls mint (once, however many callers wait).
// Waiters give up when ctx ends; the mint itself always completes so the
// next handshake finds its result.
func (c *leafCache) get(ctx context.Context, key string, now time.Time, mint func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		if e := el.Value.(*cachedLeaf); now.Before(e.renewAt) {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return e.cert, nil
		}
	}
	if call, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.cert, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	call := &mintCall{done: make(chan struct{})}
	c.inflight[key] = call
	c.mu.Unlock()

	call.cert, call.err = mint()

	c.mu.Lock()
	delete(c.inflight, key)
	if call.err == nil {
		c.store(key, call.cert)
	}
	c.mu.Unlock()
	close(call.done)
	return call.cert, call.err
}

// store must be called with mu held.
func (c *leafCache) store(key string, cert *tls.Certificate) {
	// Renew once two thirds of the lifetime have passed: early enough that
	// no client sees an expired leaf, and it needs no separate threshold for
	// leaves cut short by the CA's own expiry.
	nb, na := cert.Leaf.NotBefore, cert.Leaf.NotAfter
	e := &cachedLeaf{key: key, cert: cert, renewAt: nb.Add(na.Sub(nb) * 2 / 3)}
	if el, ok := c.entries[key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[key] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cachedLeaf).key)
	}
}

func (c *leafCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
