package identity_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/store"
)

// TestValidateAcceptsIssuedToken is the positive control of the security
// suite: what the issuer mints, the validator accepts, with every claim the
// resource providers rely on.
func TestValidateAcceptsIssuedToken(t *testing.T) {
	p := newPlane(t)
	sp, _ := p.servicePrincipal(t, "app")
	c := mustValidate(t, p.validator, p.issue(t, sp, armResource), identity.ServiceARM)
	now := p.clock.Now()
	if c.ObjectID != sp.ObjectID || c.Subject != sp.ObjectID || c.AppID != sp.AppID || c.TenantID != p.tenant ||
		c.Issuer != "https://sts.windows.net/"+p.tenant+"/" || c.Audience != armResource || c.IDType != "app" || c.Version != "1.0" {
		t.Errorf("claims = %+v", c)
	}
	if c.Expires != now.Add(p.lifetime).Unix() || c.NotBefore > now.Unix() || c.IssuedAt > now.Unix() {
		t.Errorf("iat/nbf/exp = %d/%d/%d, now %d", c.IssuedAt, c.NotBefore, c.Expires, now.Unix())
	}
	// Any spelling of the ARM audience is for ARM.
	for _, aud := range []string{"https://management.azure.com", "https://management.core.windows.net"} {
		mustValidate(t, p.validator, p.issue(t, sp, aud), identity.ServiceARM)
	}
}

// securityCase is one token the validator must refuse.
type securityCase struct {
	name string
	// token builds the token to present; it may move the plane's clock or
	// change its directory, as the attack needs.
	token   func(t *testing.T, p *plane, sp store.Principal) string
	service identity.Service
	kind    string
	reason  []string
}

func TestValidateRefuses(t *testing.T) {
	const otherTenant = "11111111-2222-4333-8444-555555555555"
	cases := []securityCase{{
		name: "alg none",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			kid, _ := p.keys.ActiveKeyForTest()
			h := encodeSegment(t, map[string]any{"typ": "JWT", "alg": "none", "kid": kid})
			return h + "." + encodeSegment(t, p.validClaims(sp, armResource)) + "."
		},
		kind: "invalid", reason: []string{"none", "RS256"},
	}, {
		name: "alg none signed by the library",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			kid, _ := p.keys.ActiveKeyForTest()
			return sign(t, jwt.SigningMethodNone, kid, jwt.UnsafeAllowNoneSignatureType, p.validClaims(sp, armResource))
		},
		kind: "invalid", reason: []string{"none", "RS256"},
	}, {
		name: "HS256 keyed with the PEM public key",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			kid, key := p.keys.ActiveKeyForTest()
			der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			return sign(t, jwt.SigningMethodHS256, kid, secret, p.validClaims(sp, armResource))
		},
		kind: "invalid", reason: []string{"HS256", "RS256"},
	}, {
		name: "HS256 keyed with the DER public key",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			kid, key := p.keys.ActiveKeyForTest()
			der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			return sign(t, jwt.SigningMethodHS256, kid, der, p.validClaims(sp, armResource))
		},
		kind: "invalid", reason: []string{"HS256", "RS256"},
	}, {
		name: "HS256 keyed with the PKCS#1 public key",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			kid, key := p.keys.ActiveKeyForTest()
			secret := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)})
			return sign(t, jwt.SigningMethodHS256, kid, secret, p.validClaims(sp, armResource))
		},
		kind: "invalid", reason: []string{"HS256", "RS256"},
	}, {
		name: "unknown kid",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			return sign(t, jwt.SigningMethodRS256, "no-such-kid", newRSAKey(t), p.validClaims(sp, armResource))
		},
		kind: "invalid", reason: []string{"no-such-kid", "not one of this tenant's published keys"},
	}, {
		name: "no kid",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			_, key := p.keys.ActiveKeyForTest()
			return sign(t, jwt.SigningMethodRS256, "", key, p.validClaims(sp, armResource))
		},
		kind: "invalid", reason: []string{"no kid"},
	}, {
		name: "our kid on another key's signature",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			kid, _ := p.keys.ActiveKeyForTest()
			return sign(t, jwt.SigningMethodRS256, kid, newRSAKey(t), p.validClaims(sp, armResource))
		},
		kind: "invalid", reason: []string{"signature is invalid"},
	}, {
		name: "tampered payload: oid of another principal",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			victim, _ := p.servicePrincipal(t, "victim")
			_, payload, parts := segments(t, p.issue(t, sp, armResource))
			payload["oid"], payload["sub"] = victim.ObjectID, victim.ObjectID
			return parts[0] + "." + encodeSegment(t, payload) + "." + parts[2]
		},
		kind: "invalid", reason: []string{"signature is invalid"},
	}, {
		name: "tampered payload: storage audience turned into ARM",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			_, payload, parts := segments(t, p.issue(t, sp, storageResource))
			payload["aud"] = armResource
			return parts[0] + "." + encodeSegment(t, payload) + "." + parts[2]
		},
		kind: "invalid", reason: []string{"signature is invalid"},
	}, {
		name: "tampered payload: expiry extended",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			_, payload, parts := segments(t, p.issue(t, sp, armResource))
			payload["exp"] = payload["exp"].(float64) + 24*3600
			return parts[0] + "." + encodeSegment(t, payload) + "." + parts[2]
		},
		kind: "invalid", reason: []string{"signature is invalid"},
	}, {
		name: "storage token presented to ARM",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			return p.issue(t, sp, storageResource)
		},
		kind: "audience", reason: []string{"'https://storage.azure.com/'", "https://management.core.windows.net/"},
	}, {
		name: "ARM token presented to storage",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			return p.issue(t, sp, armResource)
		}, service: identity.ServiceStorage,
		kind: "audience", reason: []string{"https://management.core.windows.net/", "https://storage.azure.com/"},
	}, {
		name: "storage token presented to ARM, warm cache",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			tok := p.issue(t, sp, storageResource)
			mustValidate(t, p.validator, tok, identity.ServiceStorage)
			return tok
		},
		kind: "audience", reason: []string{"'https://storage.azure.com/'"},
	}, {
		name: "issuer of another tenant",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			c := p.validClaims(sp, armResource)
			c.Issuer = identity.IssuerURL(otherTenant)
			return p.signWithActiveKey(t, c)
		},
		kind: "invalid", reason: []string{"issuer", otherTenant},
	}, {
		name: "v2 issuer",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			c := p.validClaims(sp, armResource)
			c.Issuer = "https://login.microsoftonline.com/" + p.tenant + "/v2.0"
			return p.signWithActiveKey(t, c)
		},
		kind: "invalid", reason: []string{"issuer", "login.microsoftonline.com"},
	}, {
		name: "expired",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			tok := p.issue(t, sp, armResource)
			p.clock.Advance(p.lifetime + p.skew + time.Second)
			return tok
		},
		kind: "expired", reason: []string{"expired at"},
	}, {
		name: "expired, warm cache",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			tok := p.issue(t, sp, armResource)
			mustValidate(t, p.validator, tok, identity.ServiceARM)
			p.clock.Advance(p.lifetime + p.skew + time.Second)
			return tok
		},
		kind: "expired", reason: []string{"expired at"},
	}, {
		name: "not valid yet",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			c := p.validClaims(sp, armResource)
			c.NotBefore = p.clock.Now().Add(p.skew + time.Minute).Unix()
			c.IssuedAt = c.NotBefore
			c.Expires = c.NotBefore + int64(p.lifetime/time.Second)
			return p.signWithActiveKey(t, c)
		},
		kind: "invalid", reason: []string{"not valid before"},
	}, {
		name: "principal deleted after a validation warmed the cache",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			tok := p.issue(t, sp, armResource)
			mustValidate(t, p.validator, tok, identity.ServiceARM)
			if err := p.directory.Delete(context.Background(), sp.ObjectID); err != nil {
				t.Fatal(err)
			}
			return tok
		},
		kind: "principal", reason: []string{sp0, "no longer exists"},
	}, {
		name: "oversized",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			c := p.validClaims(sp, armResource)
			c.Name = strings.Repeat("a", identity.MaxTokenBytes)
			return p.signWithActiveKey(t, c)
		},
		kind: "invalid", reason: []string{"bytes", "16384"},
	}, {
		name: "another tenant's token, signed with its own keys",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			other := newPlane(t, func(c *planeConfig) { c.tenant = otherTenant; c.clock = p.clock })
			osp, _ := other.servicePrincipal(t, "foreign")
			tok := other.issue(t, osp, armResource)
			mustValidate(t, other.validator, tok, identity.ServiceARM) // good there
			return tok
		},
		kind: "invalid", reason: []string{"not one of this tenant's published keys"},
	}, {
		name: "re-signed with our key for another tenant",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			c := p.validClaims(sp, armResource)
			c.TenantID = otherTenant
			return p.signWithActiveKey(t, c)
		},
		kind: "invalid", reason: []string{"tenant", otherTenant},
	}, {
		name: "no oid",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			c := p.validClaims(sp, armResource)
			c.ObjectID = ""
			return p.signWithActiveKey(t, c)
		},
		kind: "invalid", reason: []string{"oid"},
	}, {
		name: "not a JWT",
		token: func(t *testing.T, p *plane, sp store.Principal) string {
			return "not-a-jwt"
		},
		kind: "invalid", reason: []string{"malformed"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlane(t)
			sp, _ := p.servicePrincipal(t, "app")
			reason := make([]string, len(tc.reason))
			for i, r := range tc.reason {
				reason[i] = strings.ReplaceAll(r, sp0, sp.ObjectID)
			}
			tok := tc.token(t, p, sp)
			service := tc.service
			if service == "" {
				service = identity.ServiceARM
			}
			_, err := p.validator.Validate(context.Background(), tok, service)
			wantRefused(t, err, tc.kind, reason...)
			// Refused twice: a refusal is never cached as a success.
			_, err = p.validator.Validate(context.Background(), tok, service)
			wantRefused(t, err, tc.kind, reason...)
		})
	}
}

// sp0 in an expected reason stands for the case's principal object id.
const sp0 = "{principal}"

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestValidateSkewBoundaries pins the tolerance to exactly the configured
// skew on both ends of the lifetime.
func TestValidateSkewBoundaries(t *testing.T) {
	p := newPlane(t)
	sp, _ := p.servicePrincipal(t, "app")

	c := p.validClaims(sp, armResource)
	c.NotBefore = p.clock.Now().Add(p.skew - time.Second).Unix()
	mustValidate(t, p.validator, p.signWithActiveKey(t, c), identity.ServiceARM)

	tok := p.issue(t, sp, armResource)
	p.clock.Advance(p.lifetime + p.skew - time.Second)
	mustValidate(t, p.validator, tok, identity.ServiceARM)
	p.clock.Advance(time.Second)
	_, err := p.validator.Validate(context.Background(), tok, identity.ServiceARM)
	wantRefused(t, err, "expired", "expired at")
}

// TestDeletedPrincipalRefusedAcrossServices: deletion must stop a token at
// every service, whichever of them warmed the cache.
func TestDeletedPrincipalRefusedAcrossServices(t *testing.T) {
	p := newPlane(t)
	sp, _ := p.servicePrincipal(t, "app")
	keep, _ := p.servicePrincipal(t, "bystander")
	arm, storage := p.issue(t, sp, armResource), p.issue(t, sp, storageResource)
	other := p.issue(t, keep, armResource)
	mustValidate(t, p.validator, arm, identity.ServiceARM)
	mustValidate(t, p.validator, storage, identity.ServiceStorage)
	mustValidate(t, p.validator, other, identity.ServiceARM)

	if err := p.directory.Delete(context.Background(), sp.ObjectID); err != nil {
		t.Fatal(err)
	}
	_, err := p.validator.Validate(context.Background(), arm, identity.ServiceARM)
	wantRefused(t, err, "principal", sp.ObjectID)
	_, err = p.validator.Validate(context.Background(), storage, identity.ServiceStorage)
	wantRefused(t, err, "principal", sp.ObjectID)
	// Other principals' tokens are unaffected (the cache is rebuilt).
	mustValidate(t, p.validator, other, identity.ServiceARM)
	// And the deleted client can't get a new token.
	if _, err := p.directory.AuthenticateSecret(context.Background(), sp.AppID, "x"); err == nil {
		t.Error("a deleted client authenticated")
	}
}

// lookupFunc adapts a function to identity.PrincipalLookup.
type lookupFunc func(ctx context.Context, objectID string) (store.Principal, error)

func (f lookupFunc) Get(ctx context.Context, objectID string) (store.Principal, error) {
	return f(ctx, objectID)
}

// TestPrincipalDeletedDuringValidationIsNotCached is the race between a
// validation in flight and a deletion: the validation looked the principal
// up just before it was deleted (and the cache invalidated), then stores its
// result. That result must not outlive the deletion.
func TestPrincipalDeletedDuringValidationIsNotCached(t *testing.T) {
	var victim atomic.Value // object id to delete after its lookup
	victim.Store("")
	p := newPlane(t, func(c *planeConfig) {
		c.lookup = func(p *plane, l identity.PrincipalLookup) identity.PrincipalLookup {
			return lookupFunc(func(ctx context.Context, oid string) (store.Principal, error) {
				pr, err := l.Get(ctx, oid)
				if oid == victim.Load().(string) {
					victim.Store("")
					// The deletion lands between the lookup and the cache write.
					if derr := p.directory.Delete(ctx, oid); derr != nil {
						t.Error(derr)
					}
				}
				return pr, err
			})
		}
	})
	sp, _ := p.servicePrincipal(t, "app")
	tok := p.issue(t, sp, armResource)
	victim.Store(sp.ObjectID)
	// This validation raced the deletion; either answer is acceptable for it.
	_, _ = p.validator.Validate(context.Background(), tok, identity.ServiceARM)
	// Every later one must see the deletion.
	_, err := p.validator.Validate(context.Background(), tok, identity.ServiceARM)
	wantRefused(t, err, "principal", sp.ObjectID, "no longer exists")
}

// TestKeyRemovalDropsCachedValidations: a token whose key has been dropped
// stops validating at once, even from a warm cache and before it expires.
func TestKeyRemovalDropsCachedValidations(t *testing.T) {
	// A retention shorter than the lifetime, so the key goes before the
	// token expires and only the cache invalidation can refuse it.
	p := newPlane(t, func(c *planeConfig) { c.retention = 10 * time.Minute })
	sp, _ := p.servicePrincipal(t, "app")
	tok := p.issue(t, sp, armResource)
	kid := kidOf(t, tok)
	mustValidate(t, p.validator, tok, identity.ServiceARM)

	p.clock.Advance(time.Minute)
	p.rotate(t)
	mustValidate(t, p.validator, tok, identity.ServiceARM) // retired, still published

	p.clock.Advance(11 * time.Minute)
	p.refresh(t)
	for _, k := range p.keys.JWKS() {
		if k.KID == kid {
			t.Fatalf("key %s still published after its retention", kid)
		}
	}
	_, err := p.validator.Validate(context.Background(), tok, identity.ServiceARM)
	wantRefused(t, err, "invalid", kid, "not one of this tenant's published keys")
	// The new key's tokens are fine.
	mustValidate(t, p.validator, p.issue(t, sp, armResource), identity.ServiceARM)
}

// TestValidationErrorUnwraps keeps the cause reachable for logs.
func TestValidationErrorUnwraps(t *testing.T) {
	p := newPlane(t)
	sp, _ := p.servicePrincipal(t, "app")
	tok := p.issue(t, sp, armResource)
	p.clock.Advance(p.lifetime + p.skew + time.Minute)
	_, err := p.validator.Validate(context.Background(), tok, identity.ServiceARM)
	if !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("err = %v, want one wrapping jwt.ErrTokenExpired", err)
	}
}

// TestTokenHasOneSpelling: a token validates only as minted. Base64
// decoding that ignores the unused bits of the last character, or line
// breaks, would let a holder present one token under many spellings — each
// a fresh cache entry that costs a signature check and a principal lookup
// and, by the thousands, flushes the validation cache for everyone.
func TestTokenHasOneSpelling(t *testing.T) {
	p := newPlane(t)
	sp, _ := p.servicePrincipal(t, "app")
	tok := p.issue(t, sp, armResource)
	mustValidate(t, p.validator, tok, identity.ServiceARM)
	_, _, parts := segments(t, tok)

	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := parts[2]
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	// 256 signature bytes use 2 bits of the last of 342 characters.
	other := alphabet[(last&^0x0f)|((last+1)&0x0f)]
	variants := map[string]string{
		"unused bits of the signature's last character": parts[0] + "." + parts[1] + "." + sig[:len(sig)-1] + string(other),
		"line break in the signature":                   parts[0] + "." + parts[1] + "." + sig[:10] + "\n" + sig[10:],
		"carriage return in the payload":                parts[0] + "." + parts[1][:10] + "\r" + parts[1][10:] + "." + sig,
		"padding":                                       parts[0] + "." + parts[1] + "." + sig + "==",
	}
	for name, v := range variants {
		t.Run(name, func(t *testing.T) {
			if v == tok {
				t.Fatal("variant equals the token")
			}
			_, err := p.validator.Validate(context.Background(), v, identity.ServiceARM)
			wantRefused(t, err, "invalid", "malformed")
		})
	}
}
