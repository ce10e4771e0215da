package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/routing/engine"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
)

func ehRouting(name, ehNamespace, eh, identity, condition string) string {
	return fmt.Sprintf(`{
	  "endpoints": {"eventHubs": [{"name": %q, "authenticationType": "identityBased", "endpointUri": "sb://%s.servicebus.%s", "entityPath": %q %s}],
	                "serviceBusQueues": [], "serviceBusTopics": [], "storageContainers": []},
	  "routes": [{"name": "r1", "source": "DeviceMessages", "condition": %q, "endpointNames": [%q], "isEnabled": true}],
	  "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true", "endpointNames": ["events"], "isEnabled": true},
	  "enrichments": [{"key": "hub", "value": "$iothubname", "endpointNames": [%q]}, {"key": "static", "value": "s1", "endpointNames": [%q]}]
	}`, name, ehNamespace, suffix, eh, identity, condition, name, name, name)
}

// TestEventHubIdentityBased routes by condition to an event hub with the
// hub's system-assigned identity and with a user-assigned one; the rest
// takes the fallback route.
func TestEventHubIdentityBased(t *testing.T) {
	f := newFixture(t)
	ehID, _ := f.eventHub("ehns-one", "telemetry")
	uaID, uaPrincipal := f.userAssigned("routing-id")
	nsID := strings.TrimSuffix(ehID, "/eventhubs/telemetry")
	// The user-assigned identity's role is at the namespace: it covers
	// every event hub below.
	f.assign(uaPrincipal, roleEventHubsSender, nsID)

	for _, tc := range []struct {
		hub, identity string
	}{
		{"hubsys", ""},
		{"hubua", fmt.Sprintf(`, "identity": {"userAssignedIdentity": %q}`, uaID)},
	} {
		func() {
			eh := "eh-" + tc.hub
			f.call("PUT", nsID+"/eventhubs/"+eh+"?api-version=2024-01-01", `{"properties":{"partitionCount":4}}`, 200)
			spec := hubSpec{name: tc.hub, routing: ehRouting("ep1", "ehns-one", eh, tc.identity, "level = 'critical'")}
			if tc.identity == "" {
				spec.system = true
			} else {
				spec.userAssigned = []string{uaID}
			}
			p := f.hub(spec)
			if tc.identity == "" {
				f.assign(p, roleEventHubsSender, nsID+"/eventhubs/"+eh)
			}
			const n = 40
			for i := 0; i < n; i++ {
				level := "normal"
				if i%2 == 0 {
					level = "critical"
				}
				f.publish(tc.hub, 2, fmt.Sprintf("dev%d", i%3), fmt.Sprintf(`{"i":%d}`, i), map[string]string{"level": level})
			}
			var events []eventhubs.Event
			waitFor(t, 15*time.Second, "20 events", func() bool {
				events = f.readEvents("ehns-one", eh)
				return len(events) >= n/2
			})
			time.Sleep(100 * time.Millisecond)
			if events = f.readEvents("ehns-one", eh); len(events) != n/2 {
				t.Fatalf("event hub got %d events, want %d", len(events), n/2)
			}
			lastByDevice := map[string]int{}
			for _, ev := range events {
				if ev.Properties["level"] != "critical" {
					t.Fatalf("a non-matching message was routed: %+v", ev.Properties)
				}
				dev, _ := ev.Properties["iothub-connection-device-id"].(string)
				if ev.PartitionKey != dev || dev == "" {
					t.Fatalf("partition key %q, device %q", ev.PartitionKey, dev)
				}
				for _, k := range []string{"iothub-enqueuedtime", "iothub-message-source", "iothub-connection-auth-method", "iothub-connection-auth-generation-id", "content-type"} {
					if ev.Properties[k] == nil {
						t.Fatalf("event lacks %s: %+v", k, ev.Properties)
					}
				}
				if ev.Properties["iothub-message-source"] != "Telemetry" || ev.Properties["hub"] != tc.hub || ev.Properties["static"] != "s1" {
					t.Fatalf("properties %+v", ev.Properties)
				}
				if ev.ContentType != "application/json" || !strings.HasPrefix(ev.MessageID, "mid-") {
					t.Fatalf("broker properties: content type %q, message id %q", ev.ContentType, ev.MessageID)
				}
				// Per device (= per partition key), the order of sending.
				var i int
				fmt.Sscanf(string(ev.Body), `{"i":%d}`, &i)
				if last, ok := lastByDevice[dev]; ok && i <= last {
					t.Fatalf("device %s: message %d after %d", dev, i, last)
				}
				lastByDevice[dev] = i
			}
			// The built-in endpoint gets exactly the rest, through the
			// fallback route, with the device's properties.
			var builtIn []telemetry.Message
			waitFor(t, 5*time.Second, "the fallback's messages", func() bool { builtIn = f.builtIn(tc.hub); return len(builtIn) >= n/2 })
			if len(builtIn) != n/2 {
				t.Fatalf("built-in endpoint got %d messages, want %d", len(builtIn), n/2)
			}
			for _, m := range builtIn {
				if m.App["level"] != "normal" || m.DeviceID == "" || m.Enqueued.IsZero() || m.System[telemetry.PropMessageSource] != "Telemetry" ||
					m.Partition != telemetry.Partition(m.DeviceID, 2) || m.App["hub"] != "" {
					t.Fatalf("built-in endpoint message %+v", m)
				}
			}
			st := f.engine.Stats(tc.hub)
			if st.Fallback != n/2 || st.Routed != n/2 || st.Messages != n {
				t.Fatalf("stats %+v", st)
			}
			h := f.health(tc.hub, "ep1")
			if h.Status != engine.StatusHealthy || h.LastSuccessfulSendAttemptTime.IsZero() {
				t.Fatalf("health %+v", h)
			}
			hubID := f.hubID(tc.hub)
			ua := ""
			if tc.identity != "" {
				ua = uaID
			}
			if got := f.engine.TokenRequests(hubID, ua, engine.AudienceEventHubs); got != 1 {
				t.Fatalf("token requests = %d, want 1", got)
			}
		}()
	}
}
