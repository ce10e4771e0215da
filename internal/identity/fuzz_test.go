package identity_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outpost-iot/outpost/internal/identity"
)

// FuzzValidate: no input makes the validator panic or return anything but
// a *ValidationError, and the only string that validates is the token the
// issuer actually minted — no forgery, and no second spelling of it.
func FuzzValidate(f *testing.F) {
	p := newPlane(f)
	sp, _ := p.servicePrincipal(f, "app")
	minted := p.issue(f, sp, armResource)
	kid, key := p.keys.ActiveKeyForTest()
	_, _, parts := segments(f, minted)

	f.Add(minted)
	f.Add(minted[:len(minted)-1])
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + "." + parts[1] + "." + parts[2] + ".x")
	f.Add(parts[0] + ".e30." + parts[2])
	f.Add("e30.e30.")
	f.Add("..")
	f.Add("")
	f.Add(sign(f, jwt.SigningMethodNone, kid, jwt.UnsafeAllowNoneSignatureType, p.validClaims(sp, armResource)))
	f.Add(sign(f, jwt.SigningMethodHS256, kid, []byte("secret"), p.validClaims(sp, armResource)))
	expired := p.validClaims(sp, armResource)
	expired.Expires = 1
	f.Add(sign(f, jwt.SigningMethodRS256, kid, key, expired))
	f.Add(encodeSegment(f, map[string]any{"alg": "RS256", "kid": kid, "crit": []string{"x"}}) + "." + parts[1] + "." + parts[2])
	f.Add(encodeSegment(f, map[string]any{"alg": "RS256", "kid": []int{1}}) + "." + parts[1] + "." + parts[2])
	f.Add(encodeSegment(f, map[string]any{"alg": "RS256", "kid": kid}) + "." + "eyJleHAiOjFlMzA5fQ" + "." + parts[2])

	f.Fuzz(func(t *testing.T, token string) {
		c, err := p.validator.Validate(context.Background(), token, identity.ServiceARM)
		if err == nil {
			if token != minted {
				t.Fatalf("validated a token the issuer never minted: %q\nclaims %+v", token, c)
			}
			return
		}
		var ve *identity.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
		}
		if ve.Reason == "" || strings.Contains(ve.Reason, "<nil>") {
			t.Fatalf("empty reason: %+v", ve)
		}
	})
}

var oidcScopes = []string{"openid", "profile", "offline_access", "email"}

// FuzzResourceFromScope: the resource is one of the scope's words minus
// one "/.default", never contains space, and a resource survives the trip
// through its .default scope (with OIDC scopes around it).
func FuzzResourceFromScope(f *testing.F) {
	for _, s := range []string{
		"https://management.core.windows.net//.default", "https://storage.azure.com/.default",
		"openid profile offline_access https://eventhubs.azure.net//.default", "openid",
		"/.default", "//.default", " ", "https://iothubs.azure.net/.default/.default", "e406a681-f3d4-42a8-90b6-c2b029497af1/.default",
		"a\u00a0b/.default", "\xff/.default",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, scope string) {
		got := identity.ResourceFromScope(scope)
		if strings.ContainsFunc(got, unicode.IsSpace) {
			t.Fatalf("ResourceFromScope(%q) = %q contains space", scope, got)
		}
		if got != "" {
			fields := strings.Fields(scope)
			if !slices.Contains(fields, got) && !slices.Contains(fields, got+"/.default") {
				t.Fatalf("ResourceFromScope(%q) = %q is not one of its words", scope, got)
			}
			if s, ok := identity.ServiceOf(got); ok && !identity.AudienceMatches(got, s) {
				t.Fatalf("%q names %s but is not accepted as its audience", got, s)
			}
		} else {
			// Empty only when there is no resource scope, or the first one
			// is a bare "/.default".
			for _, w := range strings.Fields(scope) {
				if !slices.Contains(oidcScopes, w) {
					if w != "/.default" {
						t.Fatalf("ResourceFromScope(%q) is empty but %q is a resource scope", scope, w)
					}
					break
				}
			}
		}
		r := strings.TrimSpace(scope)
		if r == "" || strings.ContainsFunc(r, unicode.IsSpace) || slices.Contains(oidcScopes, r) {
			return
		}
		if back := identity.ResourceFromScope(r + "/.default"); back != r {
			t.Fatalf("ResourceFromScope(%q) = %q, want %q", r+"/.default", back, r)
		}
		if back := identity.ResourceFromScope("openid " + r + "/.default offline_access"); back != r {
			t.Fatalf("with OIDC scopes around %q: got %q", r, back)
		}
	})
}
