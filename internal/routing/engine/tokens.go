package engine

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/identity/msi/mitoken"
)

// tokenKey names one cached token: an identity of a hub and an audience.
type tokenKey struct {
	hub          string // lower-case hub resource id
	userAssigned string // lower-case user-assigned identity id; "" = system-assigned
	audience     string
}

// tokenCache holds the hub identities' tokens, one per (identity,
// audience), until shortly before their exp claim, so a busy endpoint asks
// the issuer once per token lifetime. Tokens are never logged.
//
// Lock order: mu, then never an entry's mu; an entry's mu is held across
// the fetch so concurrent callers wait for one request instead of each
// making their own.
type tokenCache struct {
	src    TokenSource
	now    func() time.Time
	margin time.Duration

	mu       sync.Mutex
	entries  map[tokenKey]*tokenEntry
	requests map[tokenKey]int64
}

type tokenEntry struct {
	mu      sync.Mutex
	token   string
	expires time.Time
	fetched time.Time
}

func newTokenCache(src TokenSource, now func() time.Time, margin time.Duration) *tokenCache {
	return &tokenCache{src: src, now: now, margin: margin, entries: map[tokenKey]*tokenEntry{}, requests: map[tokenKey]int64{}}
}

func keyOf(hubID, userAssigned, audience string) tokenKey {
	return tokenKey{hub: strings.ToLower(hubID), userAssigned: strings.ToLower(userAssigned), audience: audience}
}

// token returns a cached token or fetches a new one.
func (c *tokenCache) token(ctx context.Context, hubID, userAssigned, audience string) (string, error) {
	k := keyOf(hubID, userAssigned, audience)
	c.mu.Lock()
	e := c.entries[k]
	if e == nil {
		e = &tokenEntry{}
		c.entries[k] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.now()
	if e.token != "" && now.Before(e.expires.Add(-c.margin)) {
		return e.token, nil
	}
	c.mu.Lock()
	c.requests[k]++
	c.mu.Unlock()
	tok, err := c.src.ManagedIdentityToken(ctx, hubID, userAssigned, audience)
	if err != nil {
		return "", fmt.Errorf("engine: token of %s for %s: %w", describeIdentity(userAssigned), audience, err)
	}
	exp := mitoken.Expiry(tok)
	if exp.IsZero() {
		// Without a readable exp, reuse the token briefly only.
		exp = now.Add(c.margin + time.Minute)
	}
	e.token, e.expires, e.fetched = tok, exp, now
	return tok, nil
}

// invalidate drops a token the target refused as a token (not for a
// missing role), at most once a minute per key so a target that keeps
// refusing can't turn every retry into an issuer request.
func (c *tokenCache) invalidate(hubID, userAssigned, audience string) {
	k := keyOf(hubID, userAssigned, audience)
	c.mu.Lock()
	e := c.entries[k]
	c.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	if c.now().Sub(e.fetched) > time.Minute {
		e.token = ""
	}
	e.mu.Unlock()
}

// count is how many tokens were requested for one (identity, audience).
func (c *tokenCache) count(hubID, userAssigned, audience string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests[keyOf(hubID, userAssigned, audience)]
}

// TokenRequestCount is how many tokens the engine asked the token source
// for, for one identity of a hub and audience. The ids are lower-case.
type TokenRequestCount struct {
	HubResourceID string
	UserAssigned  string // "" = the system-assigned identity
	Audience      string
	Requests      int64
}

// counts lists every (identity, audience) asked for, sorted so /metrics
// reads the same from scrape to scrape.
func (c *tokenCache) counts() []TokenRequestCount {
	c.mu.Lock()
	out := make([]TokenRequestCount, 0, len(c.requests))
	for k, v := range c.requests {
		out = append(out, TokenRequestCount{HubResourceID: k.hub, UserAssigned: k.userAssigned, Audience: k.audience, Requests: v})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b TokenRequestCount) int {
		return cmp.Or(strings.Compare(a.HubResourceID, b.HubResourceID),
			strings.Compare(a.UserAssigned, b.UserAssigned), strings.Compare(a.Audience, b.Audience))
	})
	return out
}

func (c *tokenCache) total() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, v := range c.requests {
		n += v
	}
	return n
}

// forget drops a hub's tokens when the hub is removed.
func (c *tokenCache) forget(hubID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	hub := strings.ToLower(hubID)
	for k := range c.entries {
		if k.hub == hub {
			delete(c.entries, k)
		}
	}
	// Its counts go too: a deleted hub's series leave /metrics.
	for k := range c.requests {
		if k.hub == hub {
			delete(c.requests, k)
		}
	}
}

// tokenExpiry is mitoken.Expiry, under the name storage.go calls it by.
func tokenExpiry(jwt string) time.Time { return mitoken.Expiry(jwt) }

// describeIdentity names the identity in messages a person acts on.
func describeIdentity(userAssigned string) string {
	if userAssigned != "" {
		return "the hub's user-assigned identity " + userAssigned
	}
	return "the hub's system-assigned identity"
}
