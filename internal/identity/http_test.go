package identity_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/server"
)

// issuerHost is the Host the token endpoint tests send; the handler builds
// every endpoint URL (and the client assertion audience) from it.
const issuerHost = "login.outpost.test"

// tokenServer is the issuer's HTTP surface mounted as the app mounts it.
type tokenServer struct {
	p      *plane
	router *server.PathRouter
}

func newTokenServer(t testing.TB, p *plane) *tokenServer {
	t.Helper()
	r := &server.PathRouter{}
	identity.NewHandler(p.issuer, p.keys, p.directory, slog.New(slog.DiscardHandler)).Mount(r)
	return &tokenServer{p: p, router: r}
}

func (s *tokenServer) tokenURL() string {
	return "https://" + issuerHost + "/" + s.p.tenant + "/oauth2/v2.0/token"
}

// do runs one request through the handler and decodes the JSON answer.
func (s *tokenServer) do(t testing.TB, r *http.Request) (int, map[string]any, http.Header) {
	t.Helper()
	r.Host = issuerHost
	w := httptest.NewRecorder()
	s.router.ServeHTTP(w, r)
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s %s: %d, body %q is not JSON: %v", r.Method, r.URL.Path, w.Code, w.Body.String(), err)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	return w.Code, body, w.Header()
}

func (s *tokenServer) post(t testing.TB, path string, form url.Values, edit ...func(*http.Request)) (int, map[string]any, http.Header) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	for _, e := range edit {
		e(r)
	}
	return s.do(t, r)
}

func (s *tokenServer) get(t testing.TB, path string) (int, map[string]any) {
	t.Helper()
	code, body, _ := s.do(t, httptest.NewRequest(http.MethodGet, path, nil))
	return code, body
}

// wantOAuthError checks Entra's error body: the OAuth2 code, the AADSTS
// number both in error_codes and at the start of error_description, and
// the trace fields clients log.
func wantOAuthError(t testing.TB, status int, body map[string]any, wantStatus int, code string, aadsts int) {
	t.Helper()
	if status != wantStatus || body["error"] != code {
		t.Errorf("got %d %v, want %d %s (%v)", status, body["error"], wantStatus, code, body["error_description"])
	}
	if codes, _ := body["error_codes"].([]any); len(codes) != 1 || codes[0] != float64(aadsts) {
		t.Errorf("error_codes = %v, want [%d]", body["error_codes"], aadsts)
	}
	desc, _ := body["error_description"].(string)
	if !strings.HasPrefix(desc, fmt.Sprintf("AADSTS%d: ", aadsts)) {
		t.Errorf("error_description %q does not start with AADSTS%d", desc, aadsts)
	}
	for _, k := range []string{"timestamp", "trace_id", "correlation_id"} {
		if s, _ := body[k].(string); s == "" {
			t.Errorf("no %s", k)
		}
	}
	if _, leaked := body["access_token"]; leaked {
		t.Error("an error response carries an access token")
	}
}

// wantToken checks a successful v2 response and returns the validated claims.
func (s *tokenServer) wantToken(t testing.TB, status int, body map[string]any, h http.Header, service identity.Service) identity.Claims {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	if body["token_type"] != "Bearer" {
		t.Errorf("token_type = %v", body["token_type"])
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", h.Get("Cache-Control"))
	}
	lifetime := s.p.lifetime.Seconds()
	for _, k := range []string{"expires_in", "ext_expires_in"} {
		if v, ok := body[k].(float64); !ok || v < lifetime-2 || v > lifetime {
			t.Errorf("%s = %v, want about %v seconds", k, body[k], lifetime)
		}
	}
	tok, _ := body["access_token"].(string)
	return mustValidate(t, s.p.validator, tok, service)
}

func secretForm(clientID, secret, scope string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {scope}}
}

func TestTokenEndpointClientSecret(t *testing.T) {
	p := newPlane(t)
	s := newTokenServer(t, p)
	sp, secret := p.servicePrincipal(t, "app")
	path := "/" + p.tenant + "/oauth2/v2.0/token"

	t.Run("form", func(t *testing.T) {
		code, body, h := s.post(t, path, secretForm(sp.AppID, secret, "https://management.core.windows.net//.default"))
		c := s.wantToken(t, code, body, h, identity.ServiceARM)
		if c.Audience != armResource || c.AppID != sp.AppID || c.AppIDACR != "1" || c.ObjectID != sp.ObjectID || c.IDType != "app" {
			t.Errorf("claims %+v", c)
		}
	})
	t.Run("basic", func(t *testing.T) {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"https://storage.azure.com/.default"}}
		code, body, h := s.post(t, path, form, func(r *http.Request) {
			// RFC 6749 §2.3.1: form-encode, then Basic.
			r.SetBasicAuth(url.QueryEscape(sp.AppID), url.QueryEscape(secret))
		})
		c := s.wantToken(t, code, body, h, identity.ServiceStorage)
		if c.Audience != "https://storage.azure.com" || c.AppID != sp.AppID {
			t.Errorf("claims %+v", c)
		}
	})
	t.Run("common tenant", func(t *testing.T) {
		code, body, h := s.post(t, "/common/oauth2/v2.0/token", secretForm(sp.AppID, secret, "https://iothubs.azure.net/.default"))
		if c := s.wantToken(t, code, body, h, identity.ServiceIoTHub); c.TenantID != p.tenant {
			t.Errorf("tid %s", c.TenantID)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		code, body, _ := s.post(t, path, secretForm(sp.AppID, secret+"x", armResource+"/.default"))
		wantOAuthError(t, code, body, 401, "invalid_client", 7000215)
	})
	t.Run("wrong secret, basic", func(t *testing.T) {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {armResource + "/.default"}}
		code, body, _ := s.post(t, path, form, func(r *http.Request) { r.SetBasicAuth(sp.AppID, "nope") })
		wantOAuthError(t, code, body, 401, "invalid_client", 7000215)
	})
	t.Run("another client's secret", func(t *testing.T) {
		other, _ := p.servicePrincipal(t, "other")
		code, body, _ := s.post(t, path, secretForm(other.AppID, secret, armResource+"/.default"))
		wantOAuthError(t, code, body, 401, "invalid_client", 7000215)
	})
	t.Run("unknown client", func(t *testing.T) {
		code, body, _ := s.post(t, path, secretForm("00000000-0000-4000-8000-000000000000", secret, armResource+"/.default"))
		wantOAuthError(t, code, body, 400, "unauthorized_client", 700016)
	})
	t.Run("no secret", func(t *testing.T) {
		code, body, _ := s.post(t, path, secretForm(sp.AppID, "", armResource+"/.default"))
		wantOAuthError(t, code, body, 401, "invalid_client", 7000218)
	})
	t.Run("missing grant_type", func(t *testing.T) {
		form := secretForm(sp.AppID, secret, armResource+"/.default")
		form.Del("grant_type")
		code, body, _ := s.post(t, path, form)
		wantOAuthError(t, code, body, 400, "invalid_request", 900144)
		if !strings.Contains(body["error_description"].(string), "grant_type") {
			t.Errorf("description %q doesn't name grant_type", body["error_description"])
		}
	})
	t.Run("unsupported grant", func(t *testing.T) {
		form := secretForm(sp.AppID, secret, armResource+"/.default")
		form.Set("grant_type", "authorization_code")
		code, body, _ := s.post(t, path, form)
		wantOAuthError(t, code, body, 400, "unsupported_grant_type", 70003)
	})
	t.Run("unknown resource", func(t *testing.T) {
		code, body, _ := s.post(t, path, secretForm(sp.AppID, secret, "https://vault.azure.net/.default"))
		wantOAuthError(t, code, body, 400, "invalid_resource", 500011)
	})
	t.Run("no scope", func(t *testing.T) {
		code, body, _ := s.post(t, path, secretForm(sp.AppID, secret, ""))
		wantOAuthError(t, code, body, 400, "invalid_request", 900144)
	})
	t.Run("GET", func(t *testing.T) {
		code, body := s.get(t, path)
		wantOAuthError(t, code, body, 405, "invalid_request", 900561)
	})
	t.Run("expired secret", func(t *testing.T) {
		q := newPlane(t, func(c *planeConfig) { c.clock = newClock() })
		qs := newTokenServer(t, q)
		sp, secret := q.servicePrincipal(t, "old")
		q.clock.Advance(2*365*24*time.Hour + time.Hour)
		q.refresh(t)
		code, body, _ := qs.post(t, "/"+q.tenant+"/oauth2/v2.0/token", secretForm(sp.AppID, secret, armResource+"/.default"))
		wantOAuthError(t, code, body, 401, "invalid_client", 7000222)
	})
}

// TestTokenEndpointV1 is the /oauth2/token form with resource= (az, older
// SDKs): string expires_in, expires_on, not_before and the resource echoed.
func TestTokenEndpointV1(t *testing.T) {
	p := newPlane(t)
	s := newTokenServer(t, p)
	sp, secret := p.servicePrincipal(t, "app")
	for _, path := range []string{"/" + p.tenant + "/oauth2/token", "/adfs/oauth2/token"} {
		t.Run(path, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "client_secret": {secret}, "resource": {armResource}}
			code, body, _ := s.post(t, path, form)
			if code != 200 {
				t.Fatalf("%d %v", code, body)
			}
			now := p.clock.Now()
			want := map[string]string{
				"token_type": "Bearer", "resource": armResource,
				"expires_in":     strconv.Itoa(int(p.lifetime.Seconds())),
				"ext_expires_in": strconv.Itoa(int(p.lifetime.Seconds())),
				"expires_on":     strconv.FormatInt(now.Add(p.lifetime).Unix(), 10),
				"not_before":     strconv.FormatInt(now.Unix(), 10),
			}
			if strings.HasPrefix(path, "/adfs/") {
				// ADFS sends numbers here, and az adds them to an int.
				for _, k := range []string{"expires_in", "ext_expires_in"} {
					if n, ok := body[k].(float64); !ok || strconv.Itoa(int(n)) != want[k] {
						t.Errorf("%s = %#v, want the number %s", k, body[k], want[k])
					}
					delete(want, k)
				}
			}
			for k, v := range want {
				if body[k] != v {
					t.Errorf("%s = %#v, want %q", k, body[k], v)
				}
			}
			c := mustValidate(t, p.validator, body["access_token"].(string), identity.ServiceARM)
			if c.Audience != armResource || strconv.FormatInt(c.Expires, 10) != body["expires_on"] {
				t.Errorf("aud %s exp %d vs response %v", c.Audience, c.Expires, body["expires_on"])
			}
		})
	}
}

// TestTokenEndpointPassword covers the users' grant.
func TestTokenEndpointPassword(t *testing.T) {
	p := newPlane(t)
	s := newTokenServer(t, p)
	u, err := p.directory.CreateUser(context.Background(), "ops@outpost.test", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"password"}, "username": {"ops@outpost.test"}, "password": {"correct horse"}, "scope": {armResource + "/.default"}}
	code, body, h := s.post(t, "/organizations/oauth2/v2.0/token", form)
	if c := s.wantToken(t, code, body, h, identity.ServiceARM); c.ObjectID != u.ObjectID || c.IDType != "user" || c.UPN != "ops@outpost.test" {
		t.Errorf("claims %+v", c)
	}
	form.Set("password", "wrong horse")
	code, body, _ = s.post(t, "/organizations/oauth2/v2.0/token", form)
	wantOAuthError(t, code, body, 400, "invalid_grant", 50126)
}

// newClientCert makes a self-signed certificate for a client credential.
func newClientCert(t testing.TB, now time.Time) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key := newRSAKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "client"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// clientAssertion signs an assertion with the given header members.
func clientAssertion(t testing.TB, m jwt.SigningMethod, header map[string]any, key *rsa.PrivateKey, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenEndpointClientAssertion(t *testing.T) {
	p := newPlane(t)
	s := newTokenServer(t, p)
	ctx := context.Background()
	sp, _ := p.servicePrincipal(t, "cert-app")
	now := p.clock.Now()
	cert, key := newClientCert(t, now)
	if err := p.directory.AddCertificate(ctx, sp.ObjectID, cert); err != nil {
		t.Fatal(err)
	}
	stranger, strangerKey := newClientCert(t, now)
	sha1Sum, sha256Sum := sha1.Sum(cert.Raw), sha256.Sum256(cert.Raw)
	rfcX5T := map[string]any{"x5t": identity.Thumbprint(cert.Raw)}
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"aud": s.tokenURL(), "iss": sp.AppID, "sub": sp.AppID, "jti": "j1",
			"nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	post := func(t *testing.T, path, assertion string) (int, map[string]any, http.Header) {
		return s.post(t, path, url.Values{
			"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "client_info": {"1"},
			"client_assertion_type": {identity.ClientAssertionType}, "client_assertion": {assertion},
			"scope": {armResource + "/.default"},
		})
	}
	v2 := "/" + p.tenant + "/oauth2/v2.0/token"

	accepted := []struct {
		name, path string
		assertion  string
	}{
		{"x5t base64url SHA-1, RS256", v2, clientAssertion(t, jwt.SigningMethodRS256, rfcX5T, key, claims(nil))},
		{"audience as a list", v2, clientAssertion(t, jwt.SigningMethodRS256, rfcX5T, key,
			claims(func(c jwt.MapClaims) { c["aud"] = []string{"https://elsewhere.test/", s.tokenURL()} }))},
		// What MSAL Go (azidentity's ClientCertificateCredential) sends:
		// PS256 and x5t#S256 in standard base64 (accesstokens.Credential.JWT).
		{"MSAL: x5t#S256 standard base64, PS256", v2, clientAssertion(t, jwt.SigningMethodPS256,
			map[string]any{"x5t#S256": base64.StdEncoding.EncodeToString(sha256Sum[:])}, key, claims(nil))},
		// And to ADFS authorities: RS256 with x5t, also standard base64.
		{"MSAL to ADFS: x5t standard base64 SHA-1, RS256", "/adfs/oauth2/token", clientAssertion(t, jwt.SigningMethodRS256,
			map[string]any{"x5t": base64.StdEncoding.EncodeToString(sha1Sum[:])}, key,
			claims(func(c jwt.MapClaims) { c["aud"] = "https://" + issuerHost + "/adfs/oauth2/token" }))},
	}
	for _, tc := range accepted {
		t.Run("accepted: "+tc.name, func(t *testing.T) {
			code, body, _ := post(t, tc.path, tc.assertion)
			if code != 200 {
				t.Fatalf("%d %v", code, body)
			}
			c := mustValidate(t, p.validator, body["access_token"].(string), identity.ServiceARM)
			if c.AppID != sp.AppID || c.AppIDACR != "2" {
				t.Errorf("appid %s appidacr %s, want %s and 2 (certificate)", c.AppID, c.AppIDACR, sp.AppID)
			}
		})
	}

	// The certificate is public: an HMAC keyed with it proves nothing.
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
	hs.Header["x5t"] = identity.Thumbprint(cert.Raw)
	hmacWithCert, err := hs.SignedString(cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name      string
		assertion string
		aadsts    int
	}{
		{"wrong audience", clientAssertion(t, jwt.SigningMethodRS256, rfcX5T, key,
			claims(func(c jwt.MapClaims) {
				c["aud"] = "https://login.microsoftonline.com/" + p.tenant + "/oauth2/v2.0/token"
			})), 700212},
		{"unknown x5t", clientAssertion(t, jwt.SigningMethodRS256, map[string]any{"x5t": identity.Thumbprint(stranger.Raw)},
			strangerKey, claims(nil)), 700027},
		{"no x5t", clientAssertion(t, jwt.SigningMethodRS256, nil, key, claims(nil)), 700027},
		{"registered x5t, another key's signature", clientAssertion(t, jwt.SigningMethodRS256, rfcX5T, strangerKey, claims(nil)), 700027},
		{"expired", clientAssertion(t, jwt.SigningMethodRS256, rfcX5T, key, claims(func(c jwt.MapClaims) {
			c["nbf"], c["exp"] = now.Add(-time.Hour).Unix(), now.Add(-10*time.Minute).Unix()
		})), 700027},
		{"no exp", clientAssertion(t, jwt.SigningMethodRS256, rfcX5T, key, claims(func(c jwt.MapClaims) { delete(c, "exp") })), 700027},
		{"HS256 keyed with the certificate", hmacWithCert, 700027},
		{"iss of another client", clientAssertion(t, jwt.SigningMethodRS256, rfcX5T, key,
			claims(func(c jwt.MapClaims) { c["iss"] = "someone-else" })), 700021},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			code, body, _ := post(t, v2, tc.assertion)
			wantOAuthError(t, code, body, 401, "invalid_client", tc.aadsts)
		})
	}
	t.Run("refused: wrong assertion type", func(t *testing.T) {
		code, body, _ := s.post(t, v2, url.Values{
			"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "client_assertion_type": {"urn:example:saml"},
			"client_assertion": {accepted[0].assertion}, "scope": {armResource + "/.default"},
		})
		wantOAuthError(t, code, body, 400, "invalid_request", 50027)
	})
}

// TestDiscovery checks the OIDC documents MSAL and OIDC verifiers read: the
// v1 issuer, endpoints on the host that was asked, and a jwks_uri that
// serves the key ring.
func TestDiscovery(t *testing.T) {
	p := newPlane(t)
	s := newTokenServer(t, p)
	base := "https://" + issuerHost + "/"
	tenant := p.tenant
	cases := []struct {
		path                   string
		token, authorize, jwks string
	}{
		{"/" + tenant + "/v2.0/.well-known/openid-configuration",
			base + tenant + "/oauth2/v2.0/token", base + tenant + "/oauth2/v2.0/authorize", base + tenant + "/discovery/v2.0/keys"},
		{"/" + tenant + "/.well-known/openid-configuration",
			base + tenant + "/oauth2/token", base + tenant + "/oauth2/authorize", base + tenant + "/discovery/keys"},
		{"/adfs/.well-known/openid-configuration",
			base + "adfs/oauth2/token", base + "adfs/oauth2/authorize", base + "adfs/discovery/keys"},
		{"/organizations/v2.0/.well-known/openid-configuration",
			base + "organizations/oauth2/v2.0/token", base + "organizations/oauth2/v2.0/authorize", base + "organizations/discovery/v2.0/keys"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			code, doc := s.get(t, tc.path)
			if code != 200 {
				t.Fatalf("%d %v", code, doc)
			}
			want := map[string]any{
				"issuer": "https://sts.windows.net/" + tenant + "/", "token_endpoint": tc.token,
				"authorization_endpoint": tc.authorize, "jwks_uri": tc.jwks,
			}
			for k, v := range want {
				if doc[k] != v {
					t.Errorf("%s = %v, want %v", k, doc[k], v)
				}
			}
			if !reflect.DeepEqual(doc["id_token_signing_alg_values_supported"], []any{"RS256"}) {
				t.Errorf("algs %v", doc["id_token_signing_alg_values_supported"])
			}
			// The jwks_uri serves the key ring.
			u, _ := url.Parse(doc["jwks_uri"].(string))
			code, jwks := s.get(t, u.Path)
			keys, _ := jwks["keys"].([]any)
			if code != 200 || len(keys) != len(p.keys.JWKS()) {
				t.Fatalf("jwks: %d %v", code, jwks)
			}
			if kid := keys[0].(map[string]any)["kid"]; kid != p.keys.JWKS()[0].KID {
				t.Errorf("jwks kid %v, want %s", kid, p.keys.JWKS()[0].KID)
			}
			// The token_endpoint takes a grant.
			sp, secret := p.servicePrincipal(t, "disco-"+strconv.Itoa(len(tc.path)))
			u, _ = url.Parse(doc["token_endpoint"].(string))
			form := secretForm(sp.AppID, secret, armResource+"/.default")
			form.Set("resource", armResource)
			if code, body, _ := s.post(t, u.Path, form); code != 200 {
				t.Errorf("token_endpoint %s: %d %v", u.Path, code, body)
			}
		})
	}
	t.Run("instance discovery", func(t *testing.T) {
		code, doc := s.get(t, "/common/discovery/instance?api-version=1.1&authorization_endpoint=https://"+issuerHost+"/"+tenant+"/oauth2/v2.0/authorize")
		if code != 200 || doc["tenant_discovery_endpoint"] != base+tenant+"/v2.0/.well-known/openid-configuration" {
			t.Errorf("%d %v", code, doc)
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		code, body := s.get(t, "/"+tenant+"/oauth2/v2.0/devicecode")
		wantOAuthError(t, code, body, 404, "invalid_request", 90002)
	})
}

func TestResourceFromScope(t *testing.T) {
	for scope, want := range map[string]string{
		"https://management.core.windows.net//.default":                       "https://management.core.windows.net/",
		"https://storage.azure.com/.default":                                  "https://storage.azure.com",
		"openid profile offline_access https://eventhubs.azure.net//.default": "https://eventhubs.azure.net/",
		"  https://iothubs.azure.net/.default  ":                              "https://iothubs.azure.net",
		"https://management.azure.com":                                        "https://management.azure.com",
		"openid profile":                                                      "",
		"":                                                                    "",
	} {
		if got := identity.ResourceFromScope(scope); got != want {
			t.Errorf("ResourceFromScope(%q) = %q, want %q", scope, got, want)
		}
	}
}

// TestCertificatesOnlyForServicePrincipals: a managed identity's tokens
// come from its resource, never from a credential someone adds to it.
func TestCertificatesOnlyForServicePrincipals(t *testing.T) {
	p := newPlane(t)
	mi, err := p.directory.CreateManagedIdentity(context.Background(),
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id", "id")
	if err != nil {
		t.Fatal(err)
	}
	cert, key := newClientCert(t, p.clock.Now())
	if err := p.directory.AddCertificate(context.Background(), mi.ObjectID, cert); err == nil {
		t.Fatal("a certificate was added to a managed identity")
	}
	s := newTokenServer(t, p)
	a := clientAssertion(t, jwt.SigningMethodRS256, map[string]any{"x5t": identity.Thumbprint(cert.Raw)}, key, jwt.MapClaims{
		"aud": s.tokenURL(), "iss": mi.AppID, "sub": mi.AppID, "nbf": p.clock.Now().Unix(), "exp": p.clock.Now().Add(time.Minute).Unix(),
	})
	code, body, _ := s.post(t, "/"+p.tenant+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {mi.AppID}, "client_assertion_type": {identity.ClientAssertionType},
		"client_assertion": {a}, "scope": {armResource + "/.default"},
	})
	if code == http.StatusOK {
		t.Fatalf("a managed identity signed in with a client assertion: %v", body)
	}
}
