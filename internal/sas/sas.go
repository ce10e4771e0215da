package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Prefix starts every token.
const Prefix = "SharedAccessSignature "

// MaxTokenBytes bounds what Parse accepts.
const MaxTokenBytes = 4096

// Token is a parsed SAS token.
type Token struct {
	// Resource is the decoded resource URI, e.g. "myhub.example/devices/dev1".
	Resource string
	// rawResource is sr as sent (still URL-encoded): what was signed.
	rawResource string
	Signature   []byte
	Expiry      time.Time
	expiryRaw   string
	// KeyName is the policy name (skn); empty for device-key tokens.
	KeyName string
}

// Parse reads a token (with or without the "SharedAccessSignature " prefix).
func Parse(s string) (Token, error) {
	if len(s) > MaxTokenBytes {
		return Token{}, fmt.Errorf("the token is %d bytes; at most %d are accepted", len(s), MaxTokenBytes)
	}
	s = strings.TrimSpace(s)
	if len(s) >= len(Prefix) && strings.EqualFold(s[:len(Prefix)], Prefix) {
		s = strings.TrimSpace(s[len(Prefix):])
	} else if strings.HasPrefix(strings.ToLower(s), "sharedaccesssignature") {
		return Token{}, errors.New("malformed token: expected 'SharedAccessSignature sr=…&sig=…&se=…'")
	}
	var t Token
	seen := map[string]bool{}
	for _, field := range strings.Split(s, "&") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return Token{}, fmt.Errorf("malformed token field %q: expected key=value", truncate(field))
		}
		k = strings.ToLower(k)
		if seen[k] {
			return Token{}, fmt.Errorf("malformed token: field %q appears twice", k)
		}
		seen[k] = true
		switch k {
		case "sr":
			dec, err := url.QueryUnescape(v)
			if err != nil {
				return Token{}, fmt.Errorf("malformed token: sr is not URL-encoded: %w", err)
			}
			t.Resource, t.rawResource = dec, v
		case "sig":
			dec, err := url.QueryUnescape(v)
			if err != nil {
				return Token{}, fmt.Errorf("malformed token: sig is not URL-encoded: %w", err)
			}
			sig, err := base64.StdEncoding.DecodeString(dec)
			if err != nil {
				return Token{}, fmt.Errorf("malformed token: sig is not base64: %w", err)
			}
			t.Signature = sig
		case "se":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return Token{}, fmt.Errorf("malformed token: se %q is not an expiry in seconds since 1970", truncate(v))
			}
			t.Expiry, t.expiryRaw = time.Unix(n, 0), v
		case "skn":
			dec, err := url.QueryUnescape(v)
			if err != nil {
				return Token{}, fmt.Errorf("malformed token: skn is not URL-encoded: %w", err)
			}
			t.KeyName = dec
		default:
			// Unknown fields are ignored, as IoT Hub does.
		}
	}
	switch {
	case t.rawResource == "":
		return Token{}, errors.New("malformed token: sr (the resource) is missing")
	case t.Signature == nil:
		return Token{}, errors.New("malformed token: sig (the signature) is missing")
	case t.expiryRaw == "":
		return Token{}, errors.New("malformed token: se (the expiry) is missing")
	}
	return t, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Verify checks the signature with a base64 key.
func (t Token) Verify(base64Key string) bool {
	key, err := base64.StdEncoding.DecodeString(base64Key)
	if err != nil || len(key) == 0 {
		return false
	}
	return hmac.Equal(t.Signature, mac(key, t.rawResource, t.expiryRaw))
}

// VerifyRawKey checks the signature the way Event Hubs and Service Bus do:
// the HMAC key is the key string's bytes as given, not its base64 decoding
// (IoT Hub, by contrast, decodes it; see Verify).
func (t Token) VerifyRawKey(key string) bool {
	if key == "" {
		return false
	}
	return hmac.Equal(t.Signature, mac([]byte(key), t.rawResource, t.expiryRaw))
}

// ClockSkew is how far past its expiry a token is still accepted, for
// clients whose clock is behind the server's (the skew Outpost tolerates on
// bearer tokens' exp too). A SAS token carries no issue or not-before
// time, so a clock ahead only makes a token live longer.
const ClockSkew = 5 * time.Minute

// Expired reports whether the token has expired at now, allowing skew.
func (t Token) Expired(now time.Time, skew time.Duration) bool {
	return !now.Before(t.Expiry.Add(skew))
}

// Covers reports whether the token's resource is a segment prefix of target
// (case-insensitive): "hub.example" covers "hub.example/devices/d1", and
// "hub.example/devices/d1" does not cover "hub.example/devices/d10".
func (t Token) Covers(target string) bool {
	scope := strings.ToLower(strings.TrimSuffix(t.Resource, "/"))
	target = strings.ToLower(strings.TrimSuffix(target, "/"))
	return target == scope || strings.HasPrefix(target, scope+"/")
}

// Sign returns a token for resource signed with a base64 key, encoding the
// resource as the Azure SDKs do.
func Sign(resource, base64Key, keyName string, expiry time.Time) (string, error) {
	key, err := base64.StdEncoding.DecodeString(base64Key)
	if err != nil {
		return "", fmt.Errorf("sas: the key is not base64: %w", err)
	}
	sr := EncodeURIComponent(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	out := Prefix + "sr=" + sr + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(mac(key, sr, se))) + "&se=" + se
	if keyName != "" {
		out += "&skn=" + url.QueryEscape(keyName)
	}
	return out, nil
}

// SignRawKey returns an Event Hubs / Service Bus token: the key string's
// bytes are the HMAC key, and the resource is lower-cased before encoding as
// the Azure SDKs do.
func SignRawKey(resource, key, keyName string, expiry time.Time) string {
	sr := EncodeURIComponent(strings.ToLower(resource))
	se := strconv.FormatInt(expiry.Unix(), 10)
	out := Prefix + "sr=" + sr + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(mac([]byte(key), sr, se))) + "&se=" + se
	if keyName != "" {
		out += "&skn=" + url.QueryEscape(keyName)
	}
	return out
}

func mac(key []byte, rawResource, expiry string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(rawResource))
	h.Write([]byte{'\n'})
	h.Write([]byte(expiry))
	return h.Sum(nil)
}

// EncodeURIComponent encodes like JavaScript's encodeURIComponent plus
// !'()* (the Azure Node SDKs' encodeUriComponentStrict).
func EncodeURIComponent(s string) string {
	const unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(unreserved, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func decodeKey(k string) ([]byte, error) { return base64.StdEncoding.DecodeString(k) }
