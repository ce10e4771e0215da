package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// countingTransport counts the requests for one path (the JWKS), so the
// test can see the verifier refetch keys on an unknown kid.
type countingTransport struct {
	next http.RoundTripper
	path atomic.Value // string
	hits atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if p, _ := c.path.Load().(string); p != "" && r.URL.Path == p {
		c.hits.Add(1)
	}
	return c.next.RoundTrip(r)
}

// accessClaims are the claims the issue requires of an access token.
type accessClaims struct {
	Iss   string `json:"iss"`
	Aud   string `json:"aud"`
	OID   string `json:"oid"`
	Sub   string `json:"sub"`
	TID   string `json:"tid"`
	AppID string `json:"appid"`
	IDTyp string `json:"idtyp"`
	Ver   string `json:"ver"`
	IAT   int64  `json:"iat"`
	NBF   int64  `json:"nbf"`
	EXP   int64  `json:"exp"`
}

// TestTokensVerifyWithDiscoveryAndJWKS verifies Outpost's access tokens the
// way a third-party resource server does, with go-oidc and nothing of
// Outpost's: the tenant's discovery document names the issuer and the
// jwks_uri, the JWKS verifies the signature. After a key rotation the old
// token still verifies and the new one does too, the verifier refetching
// the JWKS for the kid it has not seen.
func TestTokensVerifyWithDiscoveryAndJWKS(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		tenant := s.App.Installation().TenantID
		op := s.App.Operator()
		issuer := "https://sts.windows.net/" + tenant + "/"

		counter := &countingTransport{next: s.HTTPClient().Transport}
		ctx := oidc.ClientContext(context.Background(), &http.Client{Transport: counter, Timeout: 30 * time.Second})
		// The discovery document lives under the authority's v2.0 path while
		// v1 tokens carry the sts.windows.net issuer, as with Entra: tell
		// go-oidc which issuer to expect instead of the URL, and check below
		// that the document names the same one.
		provider, err := oidc.NewProvider(oidc.InsecureIssuerURLContext(ctx, issuer), s.Endpoint+"/"+tenant+"/v2.0")
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		var doc struct {
			Issuer  string   `json:"issuer"`
			JWKSURI string   `json:"jwks_uri"`
			Algs    []string `json:"id_token_signing_alg_values_supported"`
		}
		if err := provider.Claims(&doc); err != nil {
			t.Fatal(err)
		}
		if doc.Issuer != issuer || !slices.Contains(doc.Algs, "RS256") {
			t.Fatalf("discovery document: issuer %q algs %v, want %q and RS256", doc.Issuer, doc.Algs, issuer)
		}
		jwksURL, err := url.Parse(doc.JWKSURI)
		if err != nil || !strings.HasPrefix(doc.JWKSURI, s.Endpoint+"/") {
			t.Fatalf("jwks_uri %q is not on the server %s", doc.JWKSURI, s.Endpoint)
		}
		counter.path.Store(jwksURL.Path)
		verifier := provider.Verifier(&oidc.Config{ClientID: testserver.ARMResource, SupportedSigningAlgs: []string{"RS256"}})

		verify := func(name, token string) accessClaims {
			t.Helper()
			idt, err := verifier.Verify(ctx, token)
			if err != nil {
				t.Fatalf("%s token: %v", name, err)
			}
			var c accessClaims
			if err := idt.Claims(&c); err != nil {
				t.Fatal(err)
			}
			now := time.Now().Unix()
			switch {
			case c.Iss != issuer:
				t.Errorf("%s: iss %q, want %q", name, c.Iss, issuer)
			case c.Aud != testserver.ARMResource:
				t.Errorf("%s: aud %q", name, c.Aud)
			case c.OID != op.ObjectID || c.Sub != op.ObjectID:
				t.Errorf("%s: oid %q sub %q, want the operator's object id %s", name, c.OID, c.Sub, op.ObjectID)
			case c.TID != tenant:
				t.Errorf("%s: tid %q", name, c.TID)
			case c.AppID != op.ClientID:
				t.Errorf("%s: appid %q, want %s", name, c.AppID, op.ClientID)
			case c.IDTyp != "app" || c.Ver != "1.0":
				t.Errorf("%s: idtyp %q ver %q, want app and 1.0", name, c.IDTyp, c.Ver)
			case c.IAT > now || c.NBF > now || c.IAT > c.EXP || c.NBF > c.EXP:
				t.Errorf("%s: iat %d nbf %d exp %d, now %d", name, c.IAT, c.NBF, c.EXP, now)
			case c.EXP-now < int64((55*time.Minute).Seconds()) || c.EXP-now > int64((24*time.Hour).Seconds()):
				t.Errorf("%s: expires in %ds, want about the configured lifetime", name, c.EXP-now)
			}
			return c
		}

		old := s.Token(t, testserver.ARMResource)
		verify("first", old)
		if n := counter.hits.Load(); n != 1 {
			t.Errorf("JWKS fetched %d times for the first token, want 1", n)
		}

		if err := s.App.RotateSigningKey(context.Background()); err != nil {
			t.Fatal(err)
		}
		fresh := s.Token(t, testserver.ARMResource)
		if kidOf(t, fresh) == kidOf(t, old) {
			t.Fatalf("the token after rotation is signed with the old key %s", kidOf(t, old))
		}
		verify("post-rotation", fresh)
		if n := counter.hits.Load(); n != 2 {
			t.Errorf("JWKS fetched %d times after the new kid, want 2 (one refetch)", n)
		}
		verify("pre-rotation, after rotation", old)

		// Both keys are published, and Outpost itself still takes both tokens.
		keys := fetchJWKS(t, s, doc.JWKSURI)
		for _, kid := range []string{kidOf(t, old), kidOf(t, fresh)} {
			if !slices.Contains(keys, kid) {
				t.Errorf("JWKS %v lacks %s", keys, kid)
			}
		}
		for name, tok := range map[string]string{"old": old, "new": fresh} {
			if code := getWithToken(t, s, "/subscriptions/"+s.App.Installation().SubscriptionID+"/resourcegroups?api-version=2021-04-01", tok); code != http.StatusOK {
				t.Errorf("ARM with the %s token: %d", name, code)
			}
		}
	})
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	seg, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil || h.KID == "" {
		t.Fatalf("token header %s: %v", b, err)
	}
	return h.KID
}

func fetchJWKS(t *testing.T, s *testserver.Server, uri string) []string {
	t.Helper()
	resp, err := s.HTTPClient().Get(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	return out
}

func getWithToken(t *testing.T, s *testserver.Server, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.Endpoint+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
