package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

// signingKeysSetting is the Settings key of the shared key set.
const signingKeysSetting = "identity/signing-keys"

// storedKey is one signing key as stored (shared by all nodes).
type storedKey struct {
	KID        string    `json:"kid"`
	PrivateDER []byte    `json:"privateKey"` // PKCS#8
	CertDER    []byte    `json:"cert"`       // self-signed, published as x5c
	Created    time.Time `json:"created"`
	// Retired is when a newer key took over; zero while active.
	Retired time.Time `json:"retired,omitempty"`
}

// signingKey is a parsed key.
type signingKey struct {
	kid     string
	private *rsa.PrivateKey
	cert    []byte
	created time.Time
	retired time.Time
}

// KeyRing holds the current signing keys. Keys are RSA-2048 (RS256), as
// Entra's: verifiers that follow discovery + JWKS expect that algorithm.
type KeyRing struct {
	settings store.Settings
	// rotation is the age after which the active key is replaced.
	rotation time.Duration
	// retention is how long a retired key stays published: the longest
	// token lifetime plus clock skew.
	retention time.Duration
	now       func() time.Time

	mu     sync.RWMutex
	keys   []*signingKey // newest first
	loaded time.Time
	// reloaded is when an unknown kid last re-read the key set.
	reloaded time.Time
}

// NewKeyRing builds a key ring over the shared settings.
func NewKeyRing(settings store.Settings, rotation, retention time.Duration, now func() time.Time) *KeyRing {
	return &KeyRing{settings: settings, rotation: rotation, retention: retention, now: now}
}

// Refresh loads the shared key set and rotates it when the active key is
// older than the rotation period (or when there is none). Several nodes may
// call it at once: the update is atomic and a node that loses the race
// adopts the winner's key.
func (k *KeyRing) Refresh(ctx context.Context) error { return k.refresh(ctx, false) }

// Rotate replaces the active key now (an operator's "rotate" or a test);
// the old key stays published until its tokens expire.
func (k *KeyRing) Rotate(ctx context.Context) error { return k.refresh(ctx, true) }

func (k *KeyRing) refresh(ctx context.Context, force bool) error {
	now := k.now().UTC()
	var fresh *storedKey
	raw, err := k.settings.Update(ctx, signingKeysSetting, func(cur json.RawMessage) (json.RawMessage, error) {
		var keys []storedKey
		if cur != nil {
			if err := json.Unmarshal(cur, &keys); err != nil {
				return nil, fmt.Errorf("decode signing keys: %w", err)
			}
		}
		changed := false
		if len(keys) == 0 || force || now.Sub(keys[0].Created) >= k.rotation {
			if fresh == nil { // the updater may run again; generate once
				sk, err := newStoredKey(now)
				if err != nil {
					return nil, err
				}
				fresh = &sk
			}
			if len(keys) > 0 {
				keys[0].Retired = now
			}
			keys = append([]storedKey{*fresh}, keys...)
			changed = true
		}
		// Drop retired keys no unexpired token can carry any more.
		kept := keys[:0]
		for _, sk := range keys {
			if !sk.Retired.IsZero() && now.Sub(sk.Retired) > k.retention {
				changed = true
				continue
			}
			kept = append(kept, sk)
		}
		if !changed {
			return cur, nil
		}
		return json.Marshal(kept)
	})
	if err != nil {
		return fmt.Errorf("identity: refresh signing keys: %w", err)
	}
	return k.install(raw, now)
}

// install parses a stored key set and makes it the loaded one.
func (k *KeyRing) install(raw json.RawMessage, now time.Time) error {
	var stored []storedKey
	if err := json.Unmarshal(raw, &stored); err != nil {
		return fmt.Errorf("identity: decode signing keys: %w", err)
	}
	keys := make([]*signingKey, 0, len(stored))
	for _, sk := range stored {
		priv, err := x509.ParsePKCS8PrivateKey(sk.PrivateDER)
		if err != nil {
			return fmt.Errorf("identity: parse signing key %s: %w", sk.KID, err)
		}
		rsaKey, ok := priv.(*rsa.PrivateKey)
		if !ok {
			return fmt.Errorf("identity: signing key %s is not RSA", sk.KID)
		}
		rsaKey.Precompute()
		keys = append(keys, &signingKey{kid: sk.KID, private: rsaKey, cert: sk.CertDER, created: sk.Created, retired: sk.Retired})
	}
	k.mu.Lock()
	k.keys, k.loaded = keys, now
	k.mu.Unlock()
	return nil
}

// Run refreshes the key set every interval until ctx is done, so rotations
// by any node reach this one and this node rotates when due.
func (k *KeyRing) Run(ctx context.Context, interval time.Duration, onError func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := k.Refresh(ctx); err != nil && ctx.Err() == nil {
				onError(err)
			}
		}
	}
}

// active returns the key that signs new tokens.
func (k *KeyRing) active() (*signingKey, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if len(k.keys) == 0 {
		return nil, fmt.Errorf("identity: no signing key loaded")
	}
	return k.keys[0], nil
}

// lookup returns the public key for kid, if it is still published. An
// unknown kid may be a key another node has just rotated in: the shared set
// is then re-read (read only, at most once per reloadInterval) before the
// token is refused, so a rotation does not make other nodes refuse the new
// key's tokens until their next periodic refresh.
func (k *KeyRing) lookup(kid string) (*rsa.PublicKey, bool) {
	if key, ok := k.find(kid); ok {
		return key, true
	}
	now := k.now()
	k.mu.Lock()
	due := now.Sub(k.reloaded) >= reloadInterval
	if due {
		k.reloaded = now
	}
	k.mu.Unlock()
	if !due {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := k.settings.Get(ctx, signingKeysSetting)
	if err != nil || k.install(raw, now.UTC()) != nil {
		return nil, false
	}
	return k.find(kid)
}

// reloadInterval bounds how often an unknown kid re-reads the shared key
// set (forged kids must not turn into a store read each).
const reloadInterval = time.Second

func (k *KeyRing) find(kid string) (*rsa.PublicKey, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, sk := range k.keys {
		if sk.kid == kid {
			return &sk.private.PublicKey, true
		}
	}
	return nil, false
}

// generation identifies the loaded key set; it changes when a key is added
// or dropped, which invalidates cached validations.
func (k *KeyRing) generation() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	s := ""
	for _, sk := range k.keys {
		s += sk.kid + ","
	}
	return s
}

// JWK is one published key, in the shape Entra's JWKS uses.
type JWK struct {
	Kty string   `json:"kty"`
	Use string   `json:"use"`
	Alg string   `json:"alg"`
	KID string   `json:"kid"`
	X5T string   `json:"x5t"`
	N   string   `json:"n"`
	E   string   `json:"e"`
	X5C []string `json:"x5c"`
}

// JWKS returns every published key.
func (k *KeyRing) JWKS() []JWK {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]JWK, 0, len(k.keys))
	for _, sk := range k.keys {
		pub := sk.private.PublicKey
		out = append(out, JWK{
			Kty: "RSA", Use: "sig", Alg: "RS256", KID: sk.kid, X5T: sk.kid,
			N:   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
			X5C: []string{base64.StdEncoding.EncodeToString(sk.cert)},
		})
	}
	return out
}

func newStoredKey(now time.Time) (storedKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return storedKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "Outpost token signing"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return storedKey{}, fmt.Errorf("self-sign signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storedKey{}, fmt.Errorf("encode signing key: %w", err)
	}
	// Entra's kid and x5t are the base64url SHA-1 thumbprint of the certificate.
	sum := sha1.Sum(cert)
	return storedKey{KID: base64.RawURLEncoding.EncodeToString(sum[:]), PrivateDER: der, CertDER: cert, Created: now}, nil
}
