package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestNPMDeviceSDK runs the unmodified azure-iot-device SDK (MQTT, MQTT over
// WebSocket, HTTPS) against a hub, then checks every message on the hub's
// telemetry stream with its system and application properties.
func TestNPMDeviceSDK(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		h := createHub(t, s, "rg-device")
		dev := createDevice(t, s, h, "dev-sdk")
		const n = 1000
		runNodeTestEnv(t, s, "iothub-device.test.mjs", map[string]string{
			"IOTHUB_CONNECTION_STRING":        h.ServiceConnectionString(),
			"IOTHUB_DEVICE_ID":                "dev-sdk",
			"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=dev-sdk;SharedAccessKey=" + dev,
			"TELEMETRY_COUNT":                 strconv.Itoa(n),
			"IOTHUB_NAME":                     h.Name,
		})

		want := map[string]int{"mqtt": n, "mqttws": 20, "http": 20}
		got := map[string]map[string]bool{}
		total := n + 40
		distinct, dups := 0, 0
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errDone := errors.New("done")
		err := s.App.Telemetry().Read(ctx, h.Name, telemetry.ReadOptions{FromStart: true, Partition: -1}, func(m telemetry.Message) error {
			tr := m.App["transport"]
			if got[tr] == nil {
				got[tr] = map[string]bool{}
			}
			if got[tr][m.System[telemetry.PropMessageID]] {
				dups++ // at-least-once: a retried publish whose PUBACK was lost
				return nil
			}
			got[tr][m.System[telemetry.PropMessageID]] = true
			distinct++
			var body struct{ I int }
			if m.DeviceID != "dev-sdk" || m.App["seq"] == "" || m.System[telemetry.PropContentType] != "application/json" ||
				json.Unmarshal(m.Payload, &body) != nil || strconv.Itoa(body.I) != m.App["seq"] ||
				m.System[telemetry.PropMessageID] != tr+"-"+m.App["seq"] || m.System[telemetry.PropEnqueuedTime] == "" {
				t.Errorf("message %+v", m)
			}
			if distinct == total {
				return errDone
			}
			return nil
		})
		t.Logf("messages on the stream: %d distinct, %d duplicates", distinct, dups)
		if !errors.Is(err, errDone) {
			t.Fatalf("read %d of %d messages: %v", distinct, total, err)
		}
		for tr, c := range want {
			if len(got[tr]) != c {
				t.Errorf("%s: %d distinct messages, want %d", tr, len(got[tr]), c)
			}
		}
	})
}
