package engine_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/routing/engine"
	"github.com/outpost-iot/outpost/internal/sas"
)

// receive takes one message from a queue or subscription path with the
// namespace's root key; ok is false when there is none.
func (f *fixture) receive(ns, key, path string) (body string, broker map[string]any, hdr http.Header, ok bool) {
	f.t.Helper()
	host := ns + ".servicebus." + suffix
	req, _ := http.NewRequest("DELETE", "https://"+host+"/"+path+"/messages/head?timeout=1", nil)
	req.Header.Set("Authorization", sas.SignRawKey("https://"+host+"/", key, "RootManageSharedAccessKey", time.Now().Add(time.Hour)))
	resp, err := f.egress.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNoContent {
		return "", nil, nil, false
	}
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("receive %s = %d %s", path, resp.StatusCode, b)
	}
	_ = json.Unmarshal([]byte(resp.Header.Get("BrokerProperties")), &broker)
	return string(b), broker, resp.Header, true
}

// TestServiceBusQueueAndTopic routes to a queue with a connection string
// and to a topic with a user-assigned identity.
func TestServiceBusQueueAndTopic(t *testing.T) {
	f := newFixture(t)
	nsID, key := f.serviceBus("sbns-route")
	f.call("PUT", nsID+"/queues/orders"+sbVersion, `{"properties":{}}`, 200)
	f.call("PUT", nsID+"/topics/alerts"+sbVersion, `{"properties":{}}`, 200)
	f.call("PUT", nsID+"/topics/alerts/subscriptions/all"+sbVersion, `{"properties":{}}`, 200)
	uaID, ua := f.userAssigned("sb-sender")
	f.assign(ua, roleServiceBusSender, nsID+"/topics/alerts")

	routing := fmt.Sprintf(`{
	  "endpoints": {
	    "serviceBusQueues": [{"name": "q", "connectionString": "Endpoint=sb://sbns-route.servicebus.%[1]s/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=%[2]s;EntityPath=orders"}],
	    "serviceBusTopics": [{"name": "t", "authenticationType": "identityBased", "endpointUri": "sb://sbns-route.servicebus.%[1]s", "entityPath": "alerts", "identity": {"userAssignedIdentity": %[3]q}}],
	    "eventHubs": [], "storageContainers": []},
	  "routes": [
	    {"name": "toQueue", "source": "DeviceMessages", "condition": "kind = 'order'", "endpointNames": ["q"], "isEnabled": true},
	    {"name": "toTopic", "source": "DeviceMessages", "condition": "kind = 'alert'", "endpointNames": ["t"], "isEnabled": true},
	    {"name": "disabled", "source": "DeviceMessages", "condition": "true", "endpointNames": ["q"], "isEnabled": false}],
	  "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true", "endpointNames": ["events"], "isEnabled": false},
	  "enrichments": []}`, suffix, key, uaID)
	f.hub(hubSpec{name: "hubsb", userAssigned: []string{uaID}, routing: routing})

	for i := 0; i < 9; i++ {
		kind := []string{"order", "alert", "other"}[i%3]
		f.publish("hubsb", 2, "dev1", fmt.Sprintf(`{"i":%d}`, i), map[string]string{"kind": kind})
	}
	waitFor(t, 10*time.Second, "deliveries", func() bool {
		return f.health("hubsb", "q").Delivered == 3 && f.health("hubsb", "t").Delivered == 3
	})
	for _, c := range []struct{ path, kind string }{{"orders", "order"}, {"alerts/subscriptions/all", "alert"}} {
		for i := 0; i < 3; i++ {
			body, broker, hdr, ok := f.receive("sbns-route", key, c.path)
			if !ok {
				t.Fatalf("%s: message %d missing", c.path, i)
			}
			want := fmt.Sprintf(`{"i":%d}`, i*3+map[string]int{"order": 0, "alert": 1}[c.kind])
			if body != want {
				t.Fatalf("%s: body %q, want %q (in order)", c.path, body, want)
			}
			if broker["MessageId"] != "mid-"+want || broker["ContentType"] != "application/json" {
				t.Fatalf("%s: broker properties %v", c.path, broker)
			}
			if hdr.Get("kind") != `"`+c.kind+`"` || hdr.Get("iothub-connection-device-id") != `"dev1"` || hdr.Get("iothub-message-source") != `"Telemetry"` {
				t.Fatalf("%s: properties %v", c.path, hdr)
			}
		}
		if _, _, _, ok := f.receive("sbns-route", key, c.path); ok {
			t.Fatalf("%s: more messages than routed", c.path)
		}
	}
	st := f.engine.Stats("hubsb")
	if st.Unrouted != 3 || st.Fallback != 0 || len(f.builtIn("hubsb")) != 0 {
		t.Fatalf("stats %+v, built-in %d", st, len(f.builtIn("hubsb")))
	}
	if got := f.engine.TokenRequests(f.hubID("hubsb"), uaID, engine.AudienceServiceBus); got != 1 {
		t.Fatalf("token requests %d", got)
	}
}
