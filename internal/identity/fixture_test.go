package identity_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

// Resources used throughout: the v1 audiences a token carries.
const (
	armResource     = "https://management.core.windows.net/"
	storageResource = "https://storage.azure.com/"
)

// clock is the injectable time source of a test plane. It starts far from
// the wall clock so any code that reads time.Now instead of the plane's
// clock shows up as a wrong expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2031, time.March, 4, 10, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// planeConfig is what a test may change about a plane; the defaults are
// the production defaults (config.Default) and the wiring of app/plane.go.
type planeConfig struct {
	tenant    string
	lifetime  time.Duration
	rotation  time.Duration
	retention time.Duration // 0: lifetime + skew + 1m, as the app computes it
	reuse     time.Duration
	skew      time.Duration
	// lookup wraps the principal lookup the validator uses.
	lookup func(p *plane, l identity.PrincipalLookup) identity.PrincipalLookup
	// clock shares a clock between planes (several nodes).
	clock *clock
	// store shares a database between planes (several nodes).
	store *sqlstore.Store
}

// plane is one tenant's identity plane over a real SQLite store, wired as
// internal/app wires it.
type plane struct {
	tenant    string
	clock     *clock
	store     *sqlstore.Store
	keys      *identity.KeyRing
	issuer    *identity.Issuer
	validator *identity.Validator
	directory *identity.Directory
	lifetime  time.Duration
	skew      time.Duration
}

const defaultTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

func newPlane(t testing.TB, opts ...func(*planeConfig)) *plane {
	t.Helper()
	cfg := planeConfig{
		tenant: defaultTenant, lifetime: 75 * time.Minute, rotation: 7 * 24 * time.Hour,
		reuse: 0, skew: 5 * time.Minute,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.retention == 0 {
		cfg.retention = cfg.lifetime + cfg.skew + time.Minute
	}
	if cfg.clock == nil {
		cfg.clock = newClock()
	}
	ctx := context.Background()
	st := cfg.store
	if st == nil {
		st = openStore(t)
	}
	p := &plane{tenant: cfg.tenant, clock: cfg.clock, store: st, lifetime: cfg.lifetime, skew: cfg.skew}
	p.keys = identity.NewKeyRing(st.Settings(), cfg.rotation, cfg.retention, p.clock.Now)
	if err := p.keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	p.issuer = identity.NewIssuer(cfg.tenant, p.keys, cfg.lifetime, cfg.reuse, p.clock.Now)
	var lookup identity.PrincipalLookup = st.Principals()
	if cfg.lookup != nil {
		lookup = cfg.lookup(p, lookup)
	}
	p.validator = identity.NewValidator(cfg.tenant, p.keys, lookup, cfg.skew, p.clock.Now)
	p.directory = identity.NewDirectory(st.Principals(), p.clock.Now)
	p.directory.OnDelete(func(context.Context, string) {
		p.validator.Invalidate()
		p.issuer.Forget()
	})
	return p
}

func openStore(t testing.TB) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// servicePrincipal creates an application with one client secret.
func (p *plane) servicePrincipal(t testing.TB, name string) (store.Principal, string) {
	t.Helper()
	sp, secret, err := p.directory.CreateServicePrincipal(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return sp, secret
}

// issue mints a token the way the token endpoint does for a secret.
func (p *plane) issue(t testing.TB, pr store.Principal, resource string) string {
	t.Helper()
	tok, err := p.issuer.Issue(pr, resource, "1")
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// rotate replaces the signing key as App.RotateSigningKey does.
func (p *plane) rotate(t testing.TB) {
	t.Helper()
	if err := p.keys.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.issuer.Forget()
}

func (p *plane) refresh(t testing.TB) {
	t.Helper()
	if err := p.keys.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// validClaims are claims the issuer would mint for pr now.
func (p *plane) validClaims(pr store.Principal, resource string) identity.Claims {
	now := p.clock.Now()
	iss := identity.IssuerURL(p.tenant)
	return identity.Claims{
		Audience: resource, Issuer: iss, IDP: iss,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(p.lifetime).Unix(),
		AppID: pr.AppID, AppIDACR: "1", IDType: "app",
		ObjectID: pr.ObjectID, Subject: pr.ObjectID, TenantID: p.tenant, UTI: "forged", Version: "1.0",
	}
}

// signWithActiveKey signs claims with the plane's real signing key: a
// token with a valid signature that the Issuer would never have minted.
func (p *plane) signWithActiveKey(t testing.TB, c identity.Claims) string {
	t.Helper()
	kid, key := p.keys.ActiveKeyForTest()
	return sign(t, jwt.SigningMethodRS256, kid, key, c)
}

func sign(t testing.TB, m jwt.SigningMethod, kid string, key any, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// segments splits a compact JWS and decodes its header and payload.
func segments(t testing.TB, token string) (header, payload map[string]any, parts []string) {
	t.Helper()
	parts = strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload, parts
}

func encodeSegment(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func kidOf(t testing.TB, token string) string {
	t.Helper()
	h, _, _ := segments(t, token)
	kid, _ := h["kid"].(string)
	return kid
}

// wantRefused checks that err is a *ValidationError of kind whose Reason
// contains every fragment (case-insensitive).
func wantRefused(t testing.TB, err error, kind string, fragments ...string) {
	t.Helper()
	var ve *identity.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got error %v (%T), want a *identity.ValidationError", err, err)
	}
	if ve.Kind != kind {
		t.Errorf("Kind = %q, want %q (reason: %s)", ve.Kind, kind, ve.Reason)
	}
	for _, f := range fragments {
		if !strings.Contains(strings.ToLower(ve.Reason), strings.ToLower(f)) {
			t.Errorf("Reason %q does not mention %q", ve.Reason, f)
		}
	}
	if strings.Contains(ve.Reason, "<nil>") || strings.Contains(ve.Reason, "%!") {
		t.Errorf("Reason %q lost its cause", ve.Reason)
	}
}

func mustValidate(t testing.TB, v *identity.Validator, token string, s identity.Service) identity.Claims {
	t.Helper()
	c, err := v.Validate(context.Background(), token, s)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return c
}
