package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// readEventHub reads every event of an event hub through Outpost's API
// (what `outpost eventhubs read` prints).
func readEventHub(t *testing.T, s *testserver.Server, e testEntity) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", s.Endpoint+"/outpost/eventhubs/"+url.PathEscape(e.Namespace)+"/"+url.PathEscape(e.Name)+"/events?max=1000", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token(t, testserver.ARMResource))
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Value []map[string]any `json:"value"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("read event hub: %s", resp.Status)
	}
	return out.Value
}

// TestRoutingEventHubUserAssigned is the seed's routing scenario: a hub with
// a user-assigned identity that holds Azure Event Hubs Data Sender at the
// event hub's scope, an identity-based event hub endpoint, and a route whose
// condition reads $body and an application property. The npm device SDK
// sends; the event hub receives exactly the matching messages, with IoT
// Hub's system properties and the application properties.
func TestRoutingEventHubUserAssigned(t *testing.T) {
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.Hub.RoutingMinBatchFrequency = time.Second }))
	const group = "rg-route-eh"
	ensureGroup(t, s, group)
	sub := s.App.Installation().SubscriptionID
	uami := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/route-uami"
	uamiDoc := putAndWait(t, s, uami, "2023-01-31", `{"location":"westus"}`)
	e := createMessagingEntity(t, s, group, "Microsoft.EventHub", "eventhubs", "")
	assignRole(t, s, uamiDoc["properties"].(map[string]any)["principalId"].(string), eventHubsDataSender, e.ID)

	h := createHub(t, s, group)
	key := createDevice(t, s, h, "sensor")
	routing := `{"routing":{
	  "endpoints":{"eventHubs":[{"name":"hot","authenticationType":"identityBased","identity":{"userAssignedIdentity":"` + uami + `"},
	    "endpointUri":"sb://` + e.Namespace + `.servicebus.` + s.Config.DNSSuffix + `","entityPath":"` + e.Name + `"}]},
	  "routes":[{"name":"hot-critical","source":"DeviceMessages","condition":"$body.temp >= 25 AND level = 'critical'","endpointNames":["hot"],"isEnabled":true}],
	  "fallbackRoute":{"name":"$fallback","source":"DeviceMessages","condition":"true","endpointNames":["events"],"isEnabled":true}}}`
	if code, body := setHub(t, s, h, `{"type":"UserAssigned","userAssignedIdentities":{"`+uami+`":{}}}`, routing); code >= 300 {
		t.Fatalf("routing settings: %d %v", code, body)
	}
	const n = 30
	runNodeTestEnv(t, s, "iothub-routing.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=sensor;SharedAccessKey=" + key,
		"ROUTE_COUNT":                     strconv.Itoa(n),
	})
	want := map[int]bool{}
	for i := range n {
		if i%3 == 0 && 20+i%10 >= 25 {
			want[i] = true
		}
	}
	var events []map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if events = readEventHub(t, s, e); len(events) >= len(want) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // nothing more may arrive
	events = readEventHub(t, s, e)
	if len(events) != len(want) {
		t.Fatalf("the event hub got %d events, want the %d matching ones: %v", len(events), len(want), events)
	}
	for _, ev := range events {
		var body struct{ Seq int }
		if err := json.Unmarshal([]byte(ev["body"].(string)), &body); err != nil || !want[body.Seq] {
			t.Errorf("routed event %v", ev)
		}
		props, _ := ev["properties"].(map[string]any)
		if props["level"] != "critical" || props["iothub-connection-device-id"] != "sensor" || props["iothub-message-source"] != "Telemetry" {
			t.Errorf("routed event properties %v", props)
		}
	}
	// Health: the endpoint delivered, so it is healthy.
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	_, health := op.do("GET", h.ID+"/routingEndpointsHealth?api-version=2023-06-30", "")
	t.Logf("routingEndpointsHealth: %v", health)
}
