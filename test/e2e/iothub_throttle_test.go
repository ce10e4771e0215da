package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestD2CThrottle: with a per-hub device-to-cloud rate configured (off by
// default), messages over it get IoT Hub's 429 ThrottlingException.
func TestD2CThrottle(t *testing.T) {
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.Hub.D2CMessagesPerSecond = 3 }))
	h := createHub(t, s, "rg-throttle")
	key := createDevice(t, s, h, "th-dev")
	token, _ := sas.Sign(h.HostName+"/devices/th-dev", key, "", time.Now().Add(time.Hour))
	accepted, throttled := 0, 0
	for i := 0; i < 12; i++ {
		req, _ := http.NewRequest("POST", "https://"+h.HostName+"/devices/th-dev/messages/events?api-version=2021-04-12", strings.NewReader(`{}`))
		req.Header.Set("Authorization", token)
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Message string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusNoContent:
			accepted++
		case http.StatusTooManyRequests:
			throttled++
			if !strings.HasPrefix(body.Message, "ErrorCode:ThrottlingException;") || resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 body %q, Retry-After %q", body.Message, resp.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("send %d: %s", i, resp.Status)
		}
	}
	if accepted < 3 || throttled == 0 {
		t.Errorf("accepted %d, throttled %d at 3 messages/s", accepted, throttled)
	}
}
