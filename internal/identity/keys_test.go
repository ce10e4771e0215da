package identity_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/identity"
)

func publishedKIDs(k *identity.KeyRing) []string {
	var out []string
	for _, j := range k.JWKS() {
		out = append(out, j.KID)
	}
	return out
}

// TestRotationRetiredKeyLivesAsLongAsItsTokens: after a rotation the
// retired key still verifies the tokens it signed until they expire, JWKS
// publishes both, and once the retention has passed the key is gone and its
// tokens fail for the key, not for anything else.
func TestRotationRetiredKeyLivesAsLongAsItsTokens(t *testing.T) {
	p := newPlane(t)
	sp, _ := p.servicePrincipal(t, "app")
	old := p.issue(t, sp, armResource)
	oldKID := kidOf(t, old)

	p.clock.Advance(10 * time.Minute)
	p.rotate(t)
	rotatedAt := p.clock.Now()
	fresh := p.issue(t, sp, armResource)
	newKID := kidOf(t, fresh)
	if newKID == oldKID {
		t.Fatalf("rotation kept kid %s", oldKID)
	}
	if got := publishedKIDs(p.keys); len(got) != 2 || got[0] != newKID || got[1] != oldKID {
		t.Fatalf("JWKS kids = %v, want [%s %s] (newest first)", got, newKID, oldKID)
	}
	mustValidate(t, p.validator, old, identity.ServiceARM)
	mustValidate(t, p.validator, fresh, identity.ServiceARM)

	// Periodic refreshes before the old token's expiry keep the old key.
	p.clock.Advance(p.lifetime - 10*time.Minute - time.Minute)
	p.refresh(t)
	mustValidate(t, p.validator, old, identity.ServiceARM)
	if got := publishedKIDs(p.keys); len(got) != 2 {
		t.Fatalf("JWKS kids = %v, want both while tokens of the retired key are valid", got)
	}

	// Past the retention (lifetime + skew + 1m after the rotation) the key
	// is dropped by the next refresh.
	retention := p.lifetime + p.skew + time.Minute
	p.clock.Advance(rotatedAt.Add(retention + time.Second).Sub(p.clock.Now()))
	p.refresh(t)
	if got := publishedKIDs(p.keys); len(got) != 1 || got[0] != newKID {
		t.Fatalf("JWKS kids = %v, want only %s", got, newKID)
	}
	_, err := p.validator.Validate(context.Background(), old, identity.ServiceARM)
	wantRefused(t, err, "invalid", oldKID, "not one of this tenant's published keys")
	mustValidate(t, p.validator, p.issue(t, sp, armResource), identity.ServiceARM)
}

// TestRefreshRotatesWhenDue: the active key is replaced once it is older
// than the rotation period, without an explicit Rotate.
func TestRefreshRotatesWhenDue(t *testing.T) {
	p := newPlane(t, func(c *planeConfig) { c.rotation = time.Hour })
	first := publishedKIDs(p.keys)
	p.clock.Advance(59 * time.Minute)
	p.refresh(t)
	if got := publishedKIDs(p.keys); len(got) != 1 || got[0] != first[0] {
		t.Fatalf("rotated early: %v", got)
	}
	p.clock.Advance(time.Minute)
	p.refresh(t)
	if got := publishedKIDs(p.keys); len(got) != 2 || got[1] != first[0] {
		t.Fatalf("after the rotation period kids = %v, want a new key before %s", got, first[0])
	}
}

// TestKeysSharedBetweenNodes: two key rings over one store agree on the
// keys, so a token one node signs validates on the other, also after a
// rotation by either node once the other has refreshed.
func TestKeysSharedBetweenNodes(t *testing.T) {
	a := newPlane(t)
	b := newPlane(t, func(c *planeConfig) { c.store, c.clock = a.store, a.clock })
	if ka, kb := publishedKIDs(a.keys), publishedKIDs(b.keys); len(ka) != 1 || len(kb) != 1 || ka[0] != kb[0] {
		t.Fatalf("nodes disagree on keys: %v vs %v", ka, kb)
	}
	sp, _ := a.servicePrincipal(t, "app")
	mustValidate(t, b.validator, a.issue(t, sp, armResource), identity.ServiceARM)

	a.clock.Advance(time.Minute)
	a.rotate(t)
	tok := a.issue(t, sp, armResource)
	b.refresh(t)
	mustValidate(t, b.validator, tok, identity.ServiceARM)
	if got := publishedKIDs(b.keys); len(got) != 2 || got[0] != kidOf(t, tok) {
		t.Fatalf("node b publishes %v after refresh", got)
	}
}

// TestJWKSShape checks each published key the way a strict JOSE library
// does: kid = x5t = base64url SHA-1 of the x5c certificate, whose public key
// is n/e, RSA-2048, use sig, alg RS256.
func TestJWKSShape(t *testing.T) {
	p := newPlane(t)
	p.clock.Advance(time.Minute)
	p.rotate(t)
	keys := p.keys.JWKS()
	if len(keys) != 2 {
		t.Fatalf("%d keys", len(keys))
	}
	for _, k := range keys {
		if k.Kty != "RSA" || k.Use != "sig" || k.Alg != "RS256" || len(k.X5C) != 1 {
			t.Errorf("key %+v", k)
			continue
		}
		der, err := base64.StdEncoding.DecodeString(k.X5C[0])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha1.Sum(der)
		if thumb := base64.RawURLEncoding.EncodeToString(sum[:]); k.KID != thumb || k.X5T != thumb {
			t.Errorf("kid %s / x5t %s, want the certificate thumbprint %s", k.KID, k.X5T, thumb)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			t.Fatalf("certificate key is %T", cert.PublicKey)
		}
		n, _ := base64.RawURLEncoding.DecodeString(k.N)
		e, _ := base64.RawURLEncoding.DecodeString(k.E)
		if !bytes.Equal(n, pub.N.Bytes()) || new(big.Int).SetBytes(e).Int64() != int64(pub.E) || pub.N.BitLen() != 2048 {
			t.Errorf("n/e of %s don't match its certificate", k.KID)
		}
		if now := p.clock.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			t.Errorf("certificate of %s not valid now (%s–%s)", k.KID, cert.NotBefore, cert.NotAfter)
		}
	}
}

// TestOtherNodeAcceptsAKeyRotatedIn: two nodes share the key set; a token
// signed with the key node A has just rotated in is accepted by node B at
// once (B re-reads the set on the unknown kid) instead of after B's next
// periodic refresh.
func TestOtherNodeAcceptsAKeyRotatedIn(t *testing.T) {
	a := newPlane(t)
	b := newPlane(t, func(c *planeConfig) { c.store, c.clock = a.store, a.clock })
	sp, _ := a.servicePrincipal(t, "app")
	mustValidate(t, b.validator, a.issue(t, sp, armResource), identity.ServiceARM)

	a.clock.Advance(time.Minute)
	a.rotate(t)
	fresh := a.issue(t, sp, armResource)
	mustValidate(t, b.validator, fresh, identity.ServiceARM)
}
