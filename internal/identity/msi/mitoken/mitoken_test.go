package mitoken_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/identity/msi/mitoken"
)

func TestExpiry(t *testing.T) {
	claims := func(json string) string {
		return "h." + base64.RawURLEncoding.EncodeToString([]byte(json)) + ".s"
	}
	for _, c := range []struct {
		token string
		want  time.Time
	}{
		{claims(`{"exp":1700000000}`), time.Unix(1700000000, 0)},
		{claims(`{"exp":0}`), time.Time{}},
		{claims(`{}`), time.Time{}},
		{claims(`not json`), time.Time{}},
		{"h.!!!.s", time.Time{}},
		{"opaque", time.Time{}},
	} {
		if got := mitoken.Expiry(c.token); !got.Equal(c.want) {
			t.Errorf("Expiry(%q) = %v, want %v", c.token, got, c.want)
		}
	}
}
