package identity

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outpost-iot/outpost/internal/store"
)

// Claims are the access-token claims Outpost mints: the v1 shape Entra
// issues for first-party resources.
type Claims struct {
	Audience  string `json:"aud"`
	Issuer    string `json:"iss"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expires   int64  `json:"exp"`
	AppID     string `json:"appid,omitempty"`
	// AppIDACR is how the client authenticated: 0 none/managed identity,
	// 1 secret, 2 certificate.
	AppIDACR string `json:"appidacr,omitempty"`
	IDP      string `json:"idp,omitempty"`
	IDType   string `json:"idtyp"`
	ObjectID string `json:"oid"`
	Subject  string `json:"sub"`
	TenantID string `json:"tid"`
	UTI      string `json:"uti"`
	Version  string `json:"ver"`
	// ManagedIdentityResourceID is the resource a managed identity belongs to.
	ManagedIdentityResourceID string `json:"xms_mirid,omitempty"`
	// User tokens.
	UPN        string `json:"upn,omitempty"`
	UniqueName string `json:"unique_name,omitempty"`
	Name       string `json:"name,omitempty"`
}

// GetExpirationTime and the other methods implement jwt.Claims.
func (c Claims) GetExpirationTime() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.Expires, 0)), nil
}
func (c Claims) GetIssuedAt() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.IssuedAt, 0)), nil
}
func (c Claims) GetNotBefore() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.NotBefore, 0)), nil
}
func (c Claims) GetIssuer() (string, error)             { return c.Issuer, nil }
func (c Claims) GetSubject() (string, error)            { return c.Subject, nil }
func (c Claims) GetAudience() (jwt.ClaimStrings, error) { return jwt.ClaimStrings{c.Audience}, nil }

// IssuerURL is the iss of tokens for a tenant — the value Entra uses for v1
// tokens, which MSAL also accepts as a trusted host in discovery.
func IssuerURL(tenantID string) string { return "https://sts.windows.net/" + tenantID + "/" }

// Token is a minted access token.
type Token struct {
	AccessToken string
	Resource    string
	IssuedAt    time.Time
	ExpiresOn   time.Time
}

// Issuer mints access tokens for the tenant's principals.
type Issuer struct {
	tenantID string
	keys     *KeyRing
	lifetime time.Duration
	now      func() time.Time
	cache    *tokenCache
}

// NewIssuer builds an issuer. reuse > 0 lets a token minted for the same
// principal and resource less than reuse ago be handed out again (as a
// client-side cache would); RS256 signing is the dominant cost of a grant.
func NewIssuer(tenantID string, keys *KeyRing, lifetime, reuse time.Duration, now func() time.Time) *Issuer {
	return &Issuer{tenantID: tenantID, keys: keys, lifetime: lifetime, now: now, cache: newTokenCache(reuse, 10000)}
}

// TenantID is the issuer's tenant.
func (i *Issuer) TenantID() string { return i.tenantID }

// Issue mints a token for p and resource. acr is "1" for a secret, "2" for a
// certificate, "0" for a managed identity or user.
func (i *Issuer) Issue(p store.Principal, resource, acr string) (Token, error) {
	key, err := i.keys.active()
	if err != nil {
		return Token{}, err
	}
	now := i.now()
	cacheKey := p.ObjectID + "\x00" + resource + "\x00" + acr + "\x00" + key.kid
	if t, ok := i.cache.get(cacheKey, now); ok {
		return t, nil
	}
	issuer := IssuerURL(i.tenantID)
	c := Claims{
		Audience: resource, Issuer: issuer, IDP: issuer,
		IssuedAt: now.Add(-5 * time.Minute).Unix(), NotBefore: now.Add(-5 * time.Minute).Unix(),
		Expires:  now.Add(i.lifetime).Unix(),
		ObjectID: p.ObjectID, Subject: p.ObjectID, TenantID: i.tenantID,
		UTI: randomID(16), Version: "1.0", IDType: "app",
	}
	switch p.Kind {
	case store.KindUser:
		c.IDType, c.UPN, c.UniqueName, c.Name = "user", p.Name, p.Name, p.Name
	case store.KindManagedIdentity:
		c.AppID, c.AppIDACR, c.ManagedIdentityResourceID = p.AppID, "2", p.ResourceID
	default:
		c.AppID, c.AppIDACR = p.AppID, acr
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = key.kid
	tok.Header["x5t"] = key.kid
	signed, err := tok.SignedString(key.private)
	if err != nil {
		return Token{}, fmt.Errorf("identity: sign token: %w", err)
	}
	t := Token{AccessToken: signed, Resource: resource, IssuedAt: now, ExpiresOn: time.Unix(c.Expires, 0)}
	i.cache.put(cacheKey, t)
	return t, nil
}

// Forget drops cached tokens (a principal or key went away).
func (i *Issuer) Forget() { i.cache.clear() }

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenCache keeps recently minted tokens for reuse.
type tokenCache struct {
	reuse time.Duration
	max   int
	mu    sync.Mutex
	m     map[string]Token
}

func newTokenCache(reuse time.Duration, max int) *tokenCache {
	return &tokenCache{reuse: reuse, max: max, m: map[string]Token{}}
}

func (c *tokenCache) get(k string, now time.Time) (Token, bool) {
	if c.reuse <= 0 {
		return Token{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[k]
	if !ok || now.Sub(t.IssuedAt) > c.reuse {
		return Token{}, false
	}
	return t, true
}

func (c *tokenCache) put(k string, t Token) {
	if c.reuse <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		c.m = map[string]Token{}
	}
	c.m[k] = t
}

func (c *tokenCache) clear() {
	c.mu.Lock()
	c.m = map[string]Token{}
	c.mu.Unlock()
}
