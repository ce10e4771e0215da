package identity_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/identity"
)

// Benchmarks of the identity plane. The goals they are read against (never
// asserted): ≥ 1,200 client-credentials grants/s per core, validation
// ≤ 5 µs warm and ≤ 60 µs cold.

func withReuse(d time.Duration) func(*planeConfig) {
	return func(c *planeConfig) { c.reuse = d }
}

// BenchmarkIssueToken is minting and signing one RS256 token (reuse off).
func BenchmarkIssueToken(b *testing.B) {
	p := newPlane(b, withReuse(0))
	sp, _ := p.servicePrincipal(b, "app")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.issuer.Issue(sp, armResource, "1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssueTokenReuse is the same request answered from the reuse
// cache (config.Default's 5 minutes).
func BenchmarkIssueTokenReuse(b *testing.B) {
	p := newPlane(b, withReuse(5*time.Minute))
	sp, _ := p.servicePrincipal(b, "app")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.issuer.Issue(sp, armResource, "1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientCredentialsGrant is the whole token endpoint handler, no
// TLS: parse the form, authenticate the secret against the store, mint.
func BenchmarkClientCredentialsGrant(b *testing.B) {
	for _, bc := range []struct {
		name  string
		reuse time.Duration
	}{{"reuse=off", 0}, {"reuse=on", 5 * time.Minute}} {
		p := newPlane(b, withReuse(bc.reuse))
		s := newTokenServer(b, p)
		sp, secret := p.servicePrincipal(b, "app")
		body := secretForm(sp.AppID, secret, "https://management.core.windows.net//.default").Encode()
		path := "/" + p.tenant + "/oauth2/v2.0/token"
		grant := func() int {
			r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			r.Host = issuerHost
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			s.router.ServeHTTP(w, r)
			return w.Code
		}
		if code := grant(); code != http.StatusOK {
			b.Fatalf("grant: %d", code)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				grant()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					grant()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
		})
	}
}

// BenchmarkValidateWarm is a repeated bearer token: a cache hit.
func BenchmarkValidateWarm(b *testing.B) {
	p := newPlane(b)
	sp, _ := p.servicePrincipal(b, "app")
	tok := p.issue(b, sp, armResource)
	ctx := context.Background()
	mustValidate(b, p.validator, tok, identity.ServiceARM)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.validator.Validate(ctx, tok, identity.ServiceARM); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateCold is a token seen for the first time: parse, RS256
// verification, claim checks and the principal lookup in SQLite.
func BenchmarkValidateCold(b *testing.B) {
	p := newPlane(b)
	sp, _ := p.servicePrincipal(b, "app")
	tok := p.issue(b, sp, armResource)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p.validator.Invalidate()
		if _, err := p.validator.Validate(ctx, tok, identity.ServiceARM); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateNewToken is the common cold case: a token never seen
// before (signature, claims, JSON) from a principal the validator already
// knows exists — each iteration validates a different token.
func BenchmarkValidateNewToken(b *testing.B) {
	p := newPlane(b, func(c *planeConfig) { c.reuse = 0 })
	sp, _ := p.servicePrincipal(b, "app")
	const n = 256
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = p.issue(b, sp, armResource)
	}
	ctx := context.Background()
	if _, err := p.validator.Validate(ctx, tokens[0], identity.ServiceARM); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%n == 0 {
			b.StopTimer()
			p.validator.Invalidate()
			_, _ = p.validator.Validate(ctx, tokens[0], identity.ServiceARM) // the principal is known again
			b.StartTimer()
		}
		if _, err := p.validator.Validate(ctx, tokens[i%n], identity.ServiceARM); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
