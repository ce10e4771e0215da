package identity

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outpost-iot/outpost/internal/store"
)

// MaxTokenBytes bounds what the validator parses; Entra tokens are a few KB.
const MaxTokenBytes = 16 << 10

// ValidationError says why a token was refused, in words a caller can act on.
type ValidationError struct {
	// Kind classifies the failure so each API surface can render its own
	// error code: "expired", "audience", "principal" or "invalid".
	Kind   string
	Reason string
	cause  error
}

func (e *ValidationError) Error() string { return e.Reason }
func (e *ValidationError) Unwrap() error { return e.cause }

func invalid(cause error, format string, args ...any) error {
	return &ValidationError{Kind: "invalid", Reason: fmt.Sprintf(format, args...), cause: cause}
}

func invalidAs(kind string, cause error, format string, args ...any) error {
	return &ValidationError{Kind: kind, Reason: fmt.Sprintf(format, args...), cause: cause}
}

// PrincipalLookup finds a principal by object id (store.ErrNotFound when it
// was deleted).
type PrincipalLookup interface {
	Get(ctx context.Context, objectID string) (store.Principal, error)
}

// Validator checks bearer tokens minted by this tenant's issuer.
type Validator struct {
	tenantID   string
	issuer     string
	keys       *KeyRing
	principals PrincipalLookup
	skew       time.Duration
	now        func() time.Time

	mu    sync.RWMutex
	cache map[string]Claims // token → claims; dropped wholesale on invalidation
	// live remembers principals found to exist, so a new token of a known
	// principal costs no store lookup; dropped with the cache.
	live       map[string]struct{}
	generation string // the key set the cache was filled under
	// epoch counts Invalidate calls. A validation caches its result only if
	// no invalidation happened since it looked the principal up, so a
	// deletion racing a validation can't leave the deleted principal's
	// token cached.
	epoch uint64
}

// NewValidator builds a validator.
func NewValidator(tenantID string, keys *KeyRing, principals PrincipalLookup, skew time.Duration, now func() time.Time) *Validator {
	return &Validator{tenantID: tenantID, issuer: IssuerURL(tenantID), keys: keys, principals: principals,
		skew: skew, now: now, cache: map[string]Claims{}, live: map[string]struct{}{}}
}

// maxCached bounds the validation cache.
const maxCached = 50000

// Validate checks token completely and returns its claims when it is for
// service. A cached result is reused until the token expires, unless a
// principal or signing key was removed since (Invalidate).
func (v *Validator) Validate(ctx context.Context, token string, service Service) (Claims, error) {
	if len(token) > MaxTokenBytes {
		return Claims{}, invalid(nil, "the token is %d bytes, more than the %d accepted", len(token), MaxTokenBytes)
	}
	now := v.now()
	gen := v.keys.generation()
	v.mu.RLock()
	c, ok := v.cache[token]
	stale := v.generation != gen
	epoch := v.epoch
	v.mu.RUnlock()
	if ok && !stale {
		if now.Unix() >= c.Expires+int64(v.skew/time.Second) {
			return Claims{}, invalidAs("expired", nil, "the token expired at %s", time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
		}
		if !AudienceMatches(c.Audience, service) {
			return Claims{}, invalidAs("audience", nil, "the token's audience '%s' is not valid for this service; request a token for %s", c.Audience, serviceAudienceHint(service))
		}
		return c, nil
	}
	c, err := v.parse(token, now)
	if err != nil {
		return Claims{}, err
	}
	if !AudienceMatches(c.Audience, service) {
		return Claims{}, invalidAs("audience", nil, "the token's audience '%s' is not valid for this service; request a token for %s", c.Audience, serviceAudienceHint(service))
	}
	v.mu.RLock()
	_, known := v.live[c.ObjectID]
	v.mu.RUnlock()
	if !known {
		if _, err := v.principals.Get(ctx, c.ObjectID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return Claims{}, invalidAs("principal", err, "the token's principal %s no longer exists", c.ObjectID)
			}
			return Claims{}, fmt.Errorf("identity: look up principal: %w", err)
		}
	}
	v.mu.Lock()
	if v.epoch == epoch {
		if v.generation != gen || len(v.cache) >= maxCached {
			v.cache, v.generation = map[string]Claims{}, gen
		}
		if len(v.live) >= maxCached {
			v.live = map[string]struct{}{}
		}
		v.cache[token] = c
		v.live[c.ObjectID] = struct{}{}
	}
	v.mu.Unlock()
	return c, nil
}

// parse verifies signature and standard claims.
func (v *Validator) parse(token string, now time.Time) (Claims, error) {
	// One token, one spelling: base64 decoding skips line breaks and, unless
	// strict, the unused bits of a segment's last character, so without
	// these checks a holder could present a token under many spellings.
	for i := 0; i < len(token); i++ {
		if c := token[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return Claims{}, invalid(nil, "the token is malformed: byte %d is %q, which a base64url JWT can't contain", i, c)
		}
	}
	var c Claims
	p := jwt.NewParser(
		jwt.WithStrictDecoding(),
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(v.issuer),
		jwt.WithLeeway(v.skew),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	// keyErr is why no key was found: jwt joins it with its own error in a
	// way errors.Unwrap can't take apart.
	var keyErr error
	tok, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			keyErr = errors.New("the token header has no kid")
			return nil, keyErr
		}
		key, ok := v.keys.lookup(kid)
		if !ok {
			keyErr = fmt.Errorf("the signing key '%s' is not one of this tenant's published keys", kid)
			return nil, keyErr
		}
		return key, nil
	})
	alg := ""
	if tok != nil {
		alg, _ = tok.Header["alg"].(string)
	}
	switch {
	case err == nil:
	case keyErr != nil:
		return Claims{}, invalid(err, "the token can't be verified: %v", keyErr)
	case alg != "" && alg != "RS256":
		return Claims{}, invalid(err, "the token is signed with '%s'; only RS256 is accepted", alg)
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, invalidAs("expired", err, "the token expired at %s", time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return Claims{}, invalid(err, "the token is not valid before %s", time.Unix(c.NotBefore, 0).UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return Claims{}, invalid(err, "the token's issuer '%s' is not this tenant's issuer '%s'", c.Issuer, v.issuer)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return Claims{}, invalid(err, "the token's signature is invalid")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return Claims{}, invalid(err, "the token can't be verified: %v", err)
	default:
		return Claims{}, invalid(err, "the token is malformed or not signed with RS256: %v", err)
	}
	if c.TenantID != v.tenantID {
		return Claims{}, invalid(nil, "the token is for tenant '%s', not this tenant '%s'", c.TenantID, v.tenantID)
	}
	if c.ObjectID == "" {
		return Claims{}, invalid(nil, "the token has no oid claim")
	}
	return c, nil
}

// Invalidate drops every cached validation: call it when a principal is
// deleted (its tokens must stop working at once).
func (v *Validator) Invalidate() {
	v.mu.Lock()
	v.cache = map[string]Claims{}
	v.live = map[string]struct{}{}
	v.epoch++
	v.mu.Unlock()
}

func serviceAudienceHint(s Service) string {
	switch s {
	case ServiceARM:
		return "https://management.core.windows.net/"
	case ServiceStorage:
		return "https://storage.azure.com/"
	case ServiceEventHubs:
		return "https://eventhubs.azure.net/"
	case ServiceServiceBus:
		return "https://servicebus.azure.net/"
	case ServiceIoTHub:
		return "https://iothubs.azure.net/"
	}
	return string(s)
}
