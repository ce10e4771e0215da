package identity

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// credentials is the shape of store.Principal.Credentials.
type credentials struct {
	Secrets      []secretCredential `json:"secrets,omitempty"`
	Certificates []certCredential   `json:"certificates,omitempty"`
	// PasswordHash is a bcrypt hash (users only).
	PasswordHash string `json:"passwordHash,omitempty"`
}

// secretCredential stores a client secret as a salted SHA-256 hash: secrets
// are 40 random characters, so a fast hash is enough (unlike passwords).
type secretCredential struct {
	KeyID   string    `json:"keyId"`
	Hint    string    `json:"hint"`
	Salt    string    `json:"salt"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// certCredential is a certificate whose key may sign client assertions.
type certCredential struct {
	KeyID string `json:"keyId"`
	// Thumbprint is the base64url SHA-1 of the DER (the assertion's x5t).
	Thumbprint string    `json:"thumbprint"`
	CertDER    []byte    `json:"cert"`
	Expires    time.Time `json:"expires"`
}

func decodeCredentials(raw json.RawMessage) (credentials, error) {
	var c credentials
	if len(raw) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("identity: decode credentials: %w", err)
	}
	return c, nil
}

func (c credentials) encode() json.RawMessage {
	b, _ := json.Marshal(c)
	return b
}

// newSecret returns a fresh client secret in Entra's style ("abc8Q~…").
func newSecret(now time.Time, lifetime time.Duration) (plain string, cred secretCredential) {
	raw := make([]byte, 30)
	_, _ = rand.Read(raw)
	body := strings.NewReplacer("-", "a", "_", "b").Replace(base64.RawURLEncoding.EncodeToString(raw))
	plain = body[:3] + "8Q~" + body[3:37]
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	return plain, secretCredential{
		KeyID: newUUID(), Hint: plain[:3], Salt: hex.EncodeToString(salt),
		Hash: hashSecret(salt, plain), Created: now, Expires: now.Add(lifetime),
	}
}

func hashSecret(salt []byte, secret string) string {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return hex.EncodeToString(h.Sum(nil))
}

// checkSecret reports whether secret matches an unexpired credential.
func (c credentials) checkSecret(secret string, now time.Time) (ok, expired bool) {
	for _, s := range c.Secrets {
		salt, err := hex.DecodeString(s.Salt)
		if err != nil {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(hashSecret(salt, secret)), []byte(s.Hash)) == 1 {
			if now.After(s.Expires) {
				return false, true
			}
			return true, false
		}
	}
	return false, false
}

// certificateFor finds the registered certificate a client assertion's
// header names: x5t (SHA-1) or x5t#S256 (SHA-256) of the DER, in base64url
// as RFC 7515 says or in standard base64 as MSAL sends it (PS256 with
// x5t#S256 to Entra, RS256 with x5t to ADFS). It returns the header value
// it matched, or the one it could not match, for messages.
func (c credentials) certificateFor(header map[string]any) (*x509.Certificate, string, bool) {
	named := ""
	for _, h := range []struct {
		member string
		sum    func([]byte) []byte
	}{
		{"x5t#S256", func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		{"x5t", func(b []byte) []byte { s := sha1.Sum(b); return s[:] }},
	} {
		v, _ := header[h.member].(string)
		if v == "" {
			continue
		}
		named = v
		want, ok := decodeThumbprint(v)
		if !ok {
			continue
		}
		for _, cc := range c.Certificates {
			if subtle.ConstantTimeCompare(h.sum(cc.CertDER), want) == 1 {
				cert, err := x509.ParseCertificate(cc.CertDER)
				return cert, v, err == nil
			}
		}
	}
	return nil, named, false
}

func decodeThumbprint(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// Thumbprint is the base64url SHA-1 of a certificate, as used in x5t.
func Thumbprint(der []byte) string {
	sum := sha1.Sum(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func hashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("identity: hash password: %w", err)
	}
	return string(h), nil
}

func (c credentials) checkPassword(pw string) bool {
	return c.PasswordHash != "" && bcrypt.CompareHashAndPassword([]byte(c.PasswordHash), []byte(pw)) == nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}
