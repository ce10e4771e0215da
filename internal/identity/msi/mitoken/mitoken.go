package mitoken

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// Expiry reads a token's exp claim without verifying the token: it came from
// the installation's own issuer, and only how long a caller keeps it depends
// on the answer. It is the zero time when the claim can't be read.
func Expiry(jwt string) time.Time {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(c.Exp), 0)
}
