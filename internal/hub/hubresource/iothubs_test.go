package hubresource_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
)

// TestCreateFillsDefaults creates a hub from the smallest body a client can
// send and checks every server-filled member, the hidden keys and listkeys.
func TestCreateFillsDefaults(t *testing.T) {
	f := newFixture(t)
	resp, accepted := f.call(t, "PUT", f.hubID("rg", "Hub-One")+v, `{"location":"West US","sku":{"name":"s1"}}`, 201)
	if at(accepted, "properties", "provisioningState") != "Accepted" || resp.Header.Get("Location") == "" {
		t.Errorf("PUT answered %v with headers %v, want provisioningState Accepted and LRO headers", accepted, resp.Header)
	}
	if st := f.wait(t, resp); st["status"] != "Succeeded" {
		t.Fatalf("operation %v", st)
	}
	_, hub := f.call(t, "GET", f.hubID("rg", "hub-one")+v, "", 200)
	want := map[string]any{
		"name": "Hub-One", "type": "Microsoft.Devices/IotHubs", "location": "westus", "resourcegroup": "rg",
		"subscriptionid": f.sub, "tags": map[string]any{},
		"sku":      map[string]any{"name": "S1", "tier": "Standard", "capacity": 1.0},
		"identity": map[string]any{"type": "None"},
	}
	for k, w := range want {
		if !reflect.DeepEqual(hub[k], w) {
			t.Errorf("%s = %#v, want %#v", k, hub[k], w)
		}
	}
	props := hub["properties"].(map[string]any)
	wantProps := map[string]any{
		"provisioningState": "Succeeded", "state": "Active", "hostName": "hub-one." + suffix,
		"authorizationPolicies": nil, "features": "None", "disableLocalAuth": false, "enableFileUploadNotifications": false,
		"locations": []any{map[string]any{"location": "westus", "role": "primary"}},
		"eventHubEndpoints": map[string]any{"events": map[string]any{
			"retentionTimeInDays": 1.0, "partitionCount": 4.0, "partitionIds": []any{"0", "1", "2", "3"},
			"path": "hub-one", "endpoint": "sb://iothub-ns-hub-one.servicebus." + suffix + "/",
		}},
		"routing": map[string]any{
			"endpoints": map[string]any{"serviceBusQueues": []any{}, "serviceBusTopics": []any{}, "eventHubs": []any{},
				"storageContainers": []any{}, "cosmosDBSqlContainers": []any{}},
			"routes": []any{}, "enrichments": []any{},
			"fallbackRoute": map[string]any{"name": "$fallback", "source": "DeviceMessages", "condition": "true",
				"endpointNames": []any{"events"}, "isEnabled": true},
		},
		"storageEndpoints":   map[string]any{"$default": map[string]any{"sasTtlAsIso8601": "PT1H", "connectionString": "", "containerName": ""}},
		"messagingEndpoints": map[string]any{"fileNotifications": map[string]any{"lockDurationAsIso8601": "PT1M", "ttlAsIso8601": "PT1H", "maxDeliveryCount": 10.0}},
		"cloudToDevice": map[string]any{"maxDeliveryCount": 10.0, "defaultTtlAsIso8601": "PT1H",
			"feedback": map[string]any{"lockDurationAsIso8601": "PT1M", "ttlAsIso8601": "PT1H", "maxDeliveryCount": 10.0}},
	}
	for k, w := range wantProps {
		got, ok := props[k]
		if !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("properties.%s = %#v, want %#v", k, got, w)
		}
	}
	if at(hub, "systemData", "createdAt") == nil || hub["etag"] == nil {
		t.Errorf("systemData or etag missing: %v", hub)
	}
	if h, _ := f.runtime.last(); h.Name != "Hub-One" || h.HostName != "hub-one."+suffix || h.PartitionCount != 4 || h.RetentionDays != 1 || !strings.HasSuffix(h.ResourceID, "/IotHubs/Hub-One") {
		t.Errorf("runtime saw %+v", h)
	}

	keys := listKeys(t, f, "rg", "hub-one")
	var names []string
	for _, p := range keys {
		names = append(names, p["keyName"]+"="+p["rights"])
		for _, k := range []string{p["primaryKey"], p["secondaryKey"]} {
			if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) != 32 {
				t.Errorf("policy %s has key %q, want 32 random bytes in base64", p["keyName"], k)
			}
		}
	}
	wantNames := []string{"iothubowner=RegistryWrite, ServiceConnect, DeviceConnect", "service=ServiceConnect",
		"device=DeviceConnect", "registryRead=RegistryRead", "registryReadWrite=RegistryWrite"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("policies = %v, want %v", names, wantNames)
	}

	// One policy by name (GetKeysForKeyName), with keys only from listkeys.
	_, owner := f.call(t, "POST", f.hubID("rg", "hub-one")+"/IotHubKeys/IOTHUBOWNER/listkeys"+v, "", 200)
	if owner["keyName"] != "iothubowner" || owner["primaryKey"] != keys[0]["primaryKey"] || owner["secondaryKey"] != keys[0]["secondaryKey"] {
		t.Errorf("GetKeysForKeyName = %v, want %v", owner, keys[0])
	}
	if _, shown := f.call(t, "GET", f.hubID("rg", "hub-one")+"/IotHubKeys/service"+v, "", 200); shown["primaryKey"] != nil || shown["rights"] != "ServiceConnect" {
		t.Errorf("GET of a policy = %v, want it without keys", shown)
	}
	f.flatError(t, "POST", f.hubID("rg", "hub-one")+"/IotHubKeys/nobody/listkeys"+v, "", 404, "KeyNameNotFound")
	f.call(t, "PUT", f.hubID("rg", "hub-one")+"/IotHubKeys/extra"+v, `{"rights":"ServiceConnect"}`, 405)

	// The GET-modify-PUT pattern of az and the SDKs keeps keys and settings.
	hub["tags"] = map[string]any{"env": "test"}
	body, _ := json.Marshal(hub)
	resp, _ = f.call(t, "PUT", f.hubID("rg", "hub-one")+v, string(body), 200)
	f.wait(t, resp)
	if again := listKeys(t, f, "rg", "hub-one"); !reflect.DeepEqual(again, keys) {
		t.Errorf("keys changed on update:\n%v\n%v", keys, again)
	}
	// A partial PUT keeps the settings it does not mention.
	resp, _ = f.call(t, "PUT", f.hubID("rg", "hub-one")+v, `{"location":"westus","sku":{"name":"S1","capacity":2},"properties":{"cloudToDevice":{"maxDeliveryCount":20}}}`, 200)
	f.wait(t, resp)
	_, updated := f.call(t, "GET", f.hubID("rg", "hub-one")+v, "", 200)
	if at(updated, "properties", "cloudToDevice", "maxDeliveryCount") != 20.0 || at(updated, "properties", "cloudToDevice", "feedback", "maxDeliveryCount") != 10.0 ||
		at(updated, "sku", "capacity") != 2.0 || at(updated, "properties", "eventHubEndpoints", "events", "partitionCount") != 4.0 ||
		at(updated, "systemData", "createdAt") != at(hub, "systemData", "createdAt") {
		t.Errorf("after partial update: %v", updated)
	}
}

func listKeys(t *testing.T, f *fixture, group, name string) []map[string]string {
	t.Helper()
	_, out := f.call(t, "POST", f.hubID(group, name)+"/listkeys"+v, "", 200)
	b, _ := json.Marshal(out["value"])
	var ps []map[string]string
	if err := json.Unmarshal(b, &ps); err != nil {
		t.Fatal(err)
	}
	if _, ok := out["nextLink"]; !ok {
		t.Errorf("listkeys has no nextLink member: %v", out)
	}
	return ps
}

func TestListAndDelete(t *testing.T) {
	f := newFixture(t)
	f.group(t, "rg2")
	f.create(t, "rg", "hub-a", `{"location":"westus","sku":{"name":"S1"}}`)
	f.create(t, "rg2", "hub-b", `{"location":"westus","sku":{"name":"B1"}}`)
	_, byGroup := f.call(t, "GET", "/subscriptions/"+f.sub+"/resourceGroups/rg/providers/Microsoft.Devices/IotHubs"+v, "", 200)
	_, bySub := f.call(t, "GET", "/subscriptions/"+f.sub+"/providers/Microsoft.Devices/IotHubs"+v, "", 200)
	if n := len(byGroup["value"].([]any)); n != 1 {
		t.Errorf("listed %d hubs in rg, want 1", n)
	}
	items := bySub["value"].([]any)
	if len(items) != 2 {
		t.Fatalf("listed %d hubs in the subscription, want 2", len(items))
	}
	for _, it := range items {
		if at(it, "properties", "authorizationPolicies") != nil || at(it, "resourcegroup") == nil || at(it, "etag") == nil {
			t.Errorf("listed hub %v: keys must be hidden, resourcegroup and etag present", it)
		}
	}
	resp, _ := f.call(t, "DELETE", f.hubID("rg", "hub-a")+v, "", 202)
	if st := f.wait(t, resp); st["status"] != "Succeeded" {
		t.Fatalf("delete: %v", st)
	}
	f.call(t, "GET", f.hubID("rg", "hub-a")+v, "", 404)
	if _, removed := f.runtime.last(); !reflect.DeepEqual(removed, []string{"hub-a"}) {
		t.Errorf("runtime removed %v, want [hub-a]", removed)
	}
	// Deleting the group deletes its hubs through the type too.
	f.call(t, "DELETE", "/subscriptions/"+f.sub+"/resourcegroups/rg2?api-version=2021-04-01", "", 202)
	eventually(t, "the group delete to remove hub-b", func() bool {
		_, removed := f.runtime.last()
		return reflect.DeepEqual(removed, []string{"hub-a", "hub-b"})
	})
}

func TestNameRules(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"ab", "-hub", "hub-", "12345", strings.Repeat("a", 51), "hub_1", "hub.one"} {
		msg := f.flatError(t, "PUT", f.hubID("rg", name)+v, `{"location":"westus","sku":{"name":"S1"}}`, 400, "InvalidIotHubName")
		if !strings.Contains(msg, name) || !strings.Contains(msg, "3-50") {
			t.Errorf("message for %q: %s", name, msg)
		}
	}
	for _, name := range []string{"abc", "1-2", "a" + strings.Repeat("b", 49), "Hub-9"} {
		f.create(t, "rg", name, `{"location":"westus","sku":{"name":"S1"}}`)
	}
}

func TestNamesAreUniqueAcrossTheInstallation(t *testing.T) {
	f := newFixture(t)
	f.group(t, "other")
	f.create(t, "rg", "shared-name", `{"location":"westus","sku":{"name":"S1"}}`)
	msg := f.flatError(t, "PUT", f.hubID("other", "SHARED-name")+v, `{"location":"westus","sku":{"name":"S1"}}`, 409, "IotHubNameNotAvailable")
	if !strings.Contains(msg, "unique") {
		t.Errorf("message: %s", msg)
	}
	check := func(name string) map[string]any {
		_, out := f.call(t, "POST", "/subscriptions/"+f.sub+"/providers/Microsoft.Devices/checkNameAvailability"+v, `{"name":"`+name+`"}`, 200)
		return out
	}
	if out := check("Shared-Name"); out["nameAvailable"] != false || out["reason"] != "AlreadyExists" {
		t.Errorf("checkNameAvailability(taken) = %v", out)
	}
	if out := check("free-name"); out["nameAvailable"] != true {
		t.Errorf("checkNameAvailability(free) = %v", out)
	}
	if out := check("-bad"); out["nameAvailable"] != false || out["reason"] != "Invalid" || !strings.Contains(out["message"].(string), "-bad") {
		t.Errorf("checkNameAvailability(invalid) = %v", out)
	}
}

func TestValidationErrors(t *testing.T) {
	f := newFixture(t)
	f.create(t, "rg", "fixed", `{"location":"westus","sku":{"name":"S1"},"properties":{"eventHubEndpoints":{"events":{"partitionCount":8}}}}`)
	with := func(props string) string {
		return `{"location":"westus","sku":{"name":"S1"},"properties":` + props + `}`
	}
	ep := func(extra string) string {
		return with(`{"routing":{"endpoints":{"storageContainers":[{"name":"cold","connectionString":"DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5","containerName":"c"` + extra + `}]}}}`)
	}
	// Azure's limits: 10 custom endpoints, 100 routes, 10 enrichments.
	many := func(n int, item func(i int) string) string {
		items := make([]string, n)
		for i := range items {
			items[i] = item(i)
		}
		return strings.Join(items, ",")
	}
	elevenEndpoints := with(`{"routing":{"endpoints":{"eventHubs":[` + many(11, func(i int) string {
		return fmt.Sprintf(`{"name":"e%d","connectionString":"Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=a2V5;EntityPath=eh"}`, i)
	}) + `]}}}`)
	routes := func(n int) string {
		return with(`{"routing":{"routes":[` + many(n, func(i int) string {
			return fmt.Sprintf(`{"name":"r%d","source":"DeviceMessages","condition":"true","endpointNames":["events"],"isEnabled":true}`, i)
		}) + `]}}`)
	}
	elevenEnrichments := with(`{"routing":{"enrichments":[` + many(11, func(i int) string {
		return fmt.Sprintf(`{"key":"k%d","value":"v","endpointNames":["events"]}`, i)
	}) + `]}}`)
	source := func(name string) string {
		return with(`{"routing":{"routes":[{"name":"r1","source":"` + name + `","condition":"true","endpointNames":["events"],"isEnabled":true}]}}`)
	}
	cases := []struct {
		name, hub, body, code, mentions string
		status                          int
	}{
		{"11 custom endpoints", "hub1", elevenEndpoints, "400004", "11 custom endpoints; a S1 hub may have at most 10", 400},
		{"101 routes", "hub1", routes(101), "400004", "101 routes; a S1 hub may have at most 100", 400},
		{"11 enrichments", "hub1", elevenEnrichments, "400004", "11 entries; a hub may have at most 10", 400},
		{"job lifecycle events", "hub1", source("DeviceJobLifecycleEvents"), "400004", "scheduled jobs", 400},
		{"digital twin change events", "hub1", source("digitalTwinChangeEvents"), "400004", "can't be routed", 400},
		{"unknown source", "hub1", source(""), "400004", "use one of DeviceMessages", 400},
		{"no sku", "hub1", `{"location":"westus"}`, "400004", "sku", 400},
		{"unknown sku", "hub1", `{"location":"westus","sku":{"name":"S9"}}`, "400004", "F1, S1", 400},
		{"capacity", "hub1", `{"location":"westus","sku":{"name":"S3","capacity":11}}`, "400004", "between 1 and 10", 400},
		{"partitions", "hub1", with(`{"eventHubEndpoints":{"events":{"partitionCount":33}}}`), "400016", "between 2 and 32", 400},
		{"free partitions", "hub1", `{"location":"westus","sku":{"name":"F1"},"properties":{"eventHubEndpoints":{"events":{"partitionCount":4}}}}`, "400016", "--partition-count 2", 400},
		{"partitions are fixed", "fixed", with(`{"eventHubEndpoints":{"events":{"partitionCount":4}}}`), "400004", "can't change", 400},
		{"retention", "hub1", with(`{"eventHubEndpoints":{"events":{"retentionTimeInDays":8}}}`), "400004", "1 to 7", 400},
		{"second event hub", "hub1", with(`{"eventHubEndpoints":{"more":{}}}`), "400004", "'events'", 400},
		{"storage key", "hub1", with(`{"storageEndpoints":{"files":{"connectionString":"","containerName":""}}}`), "400004", "$default", 400},
		{"duration", "hub1", with(`{"cloudToDevice":{"defaultTtlAsIso8601":"1 hour"}}`), "400004", "PT1H", 400},
		{"duration range", "hub1", with(`{"messagingEndpoints":{"fileNotifications":{"lockDurationAsIso8601":"PT1H"}}}`), "400004", "PT5M", 400},
		{"delivery count", "hub1", with(`{"cloudToDevice":{"feedback":{"maxDeliveryCount":0}}}`), "400004", "between 1 and 100", 400},
		{"notifications need storage", "hub1", with(`{"enableFileUploadNotifications":true}`), "400004", "storageEndpoints.$default", 400},
		{"reserved endpoint", "hub1", with(`{"routing":{"endpoints":{"eventHubs":[{"name":"events","connectionString":"Endpoint=sb://x/"}]}}}`), "400004", "reserved", 400},
		{"reserved $default", "hub1", with(`{"routing":{"endpoints":{"serviceBusQueues":[{"name":"$default","connectionString":"Endpoint=sb://x/"}]}}}`), "400004", "reserved", 400},
		{"duplicate endpoint", "hub1", with(`{"routing":{"endpoints":{"eventHubs":[{"name":"e1","connectionString":"Endpoint=sb://x/"}],"serviceBusQueues":[{"name":"E1","connectionString":"Endpoint=sb://x/"}]}}}`), "400004", "unique across", 400},
		{"unknown endpoint in route", "hub1", with(`{"routing":{"routes":[{"name":"r1","source":"DeviceMessages","endpointNames":["nowhere"],"isEnabled":true}]}}`), "400004", "'nowhere', which is not defined", 400},
		{"unknown endpoint in fallback", "hub1", with(`{"routing":{"fallbackRoute":{"source":"DeviceMessages","endpointNames":["nowhere"],"isEnabled":true}}}`), "400004", "not defined", 400},
		{"bad source", "hub1", with(`{"routing":{"routes":[{"name":"r1","source":"Telemetry","endpointNames":["events"],"isEnabled":true}]}}`), "400004", "DeviceMessages", 400},
		{"two targets", "hub1", with(`{"routing":{"routes":[{"name":"r1","source":"DeviceMessages","endpointNames":["events","events"],"isEnabled":true}]}}`), "400004", "exactly one", 400},
		{"no isEnabled", "hub1", with(`{"routing":{"routes":[{"name":"r1","source":"DeviceMessages","endpointNames":["events"]}]}}`), "400004", "isEnabled", 400},
		{"file name format", "hub1", ep(`,"fileNameFormat":"{iothub}/{YYYY}"`), "400004", "{partition}", 400},
		{"batch frequency", "hub1", ep(`,"batchFrequencyInSeconds":30`), "400004", "between 60 and 720", 400},
		{"encoding", "hub1", ep(`,"encoding":"xml"`), "400004", "avro", 400},
		{"no connection", "hub1", with(`{"routing":{"endpoints":{"eventHubs":[{"name":"e1"}]}}}`), "400004", "connectionString", 400},
		{"identity endpoint without identity", "hub1", with(`{"routing":{"endpoints":{"eventHubs":[{"name":"e1","authenticationType":"identityBased","endpointUri":"sb://ns.servicebus.outpost.test","entityPath":"eh"}]}}}`), "400004", "uses the hub's system-assigned identity, so the hub must have one", 400},
		{"unassigned user identity", "hub1", with(`{"storageEndpoints":{"$default":{"connectionString":"x","containerName":"c","authenticationType":"identityBased","identity":{"userAssignedIdentity":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"}}}}`), "400004", "not assigned to the hub", 400},
		{"enrichment endpoint", "hub1", with(`{"routing":{"enrichments":[{"key":"k","value":"v","endpointNames":["nowhere"]}]}}`), "400004", "nowhere", 400},
		{"policy rights", "hub1", with(`{"authorizationPolicies":[{"keyName":"p","rights":"Everything"}]}`), "400004", "RegistryRead", 400},
		{"policy key", "hub1", with(`{"authorizationPolicies":[{"keyName":"p","rights":"ServiceConnect","primaryKey":"short"}]}`), "400004", "16 to 64 bytes", 400},
		{"features", "hub1", with(`{"features":"Everything"}`), "400004", "DeviceManagement", 400},
		{"properties not an object", "hub1", with(`[]`), "400004", "JSON object", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := f.flatError(t, "PUT", f.hubID("rg", tc.hub)+v, tc.body, tc.status, tc.code)
			t.Logf("%s: %s", tc.code, msg)
			if !strings.Contains(msg, tc.mentions) {
				t.Errorf("message %q does not mention %q", msg, tc.mentions)
			}
		})
	}
	// ARM-level problems keep the ARM envelope.
	for _, tc := range []struct {
		hub, body, code string
		status          int
	}{
		{"hub1", `{"sku":{"name":"S1"}}`, "LocationRequired", 400},
		{"hub1", `{"location":"moon","sku":{"name":"S1"}}`, "LocationNotAvailableForResourceType", 400},
		{"fixed", `{"location":"eastus","sku":{"name":"S1"}}`, "InvalidResourceLocation", 409},
	} {
		if _, e := f.call(t, "PUT", f.hubID("rg", tc.hub)+v, tc.body, tc.status); at(e, "error", "code") != tc.code {
			t.Errorf("PUT %s: %v, want ARM error %s", tc.body, e, tc.code)
		}
	}
	_, e := f.call(t, "GET", f.hubID("rg", "fixed")+"?api-version=2099-01-01", "", 400)
	if at(e, "error", "code") != "NoRegisteredProviderFound" || !strings.Contains(at(e, "error", "message").(string), "2023-06-30") {
		t.Errorf("wrong api-version: %v", e)
	}
}

func TestRoutingIsStoredAndEchoed(t *testing.T) {
	f := newFixture(t)
	body := `{"location":"westus","sku":{"name":"S1"},"identity":{"type":"SystemAssigned"},"properties":{
	  "routing":{
	    "endpoints":{
	      "storageContainers":[{"name":"cold","authenticationType":"IdentityBased","endpointUri":"https://acct.blob.outpost.test","containerName":"telemetry","encoding":"json","extra":"kept"}],
	      "eventHubs":[{"name":"hot","connectionString":"Endpoint=sb://ns.servicebus.outpost.test/;SharedAccessKeyName=k;SharedAccessKey=a2V5;EntityPath=eh"}]
	    },
	    "routes":[{"name":"to-cold","source":"devicemessages","condition":"$body.temp > 20","endpointNames":["cold"],"isEnabled":true}],
	    "enrichments":[{"key":"site","value":"lab","endpointNames":["hot","events"]}]
	  },
	  "minTlsVersion":"1.2",
	  "ipFilterRules":[{"filterName":"all","action":"Accept","ipMask":"0.0.0.0/0"}]
	}}`
	hub := f.create(t, "rg", "routed", body)
	cold := at(hub, "properties", "routing", "endpoints", "storageContainers").([]any)[0]
	want := map[string]any{"name": "cold", "authenticationType": "identityBased", "endpointUri": "https://acct.blob.outpost.test",
		"containerName": "telemetry", "encoding": "json", "extra": "kept", "fileNameFormat": "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
		"batchFrequencyInSeconds": 300.0, "maxChunkSizeInBytes": 314572800.0}
	if !reflect.DeepEqual(cold, want) {
		t.Errorf("storage endpoint = %v\nwant %v", cold, want)
	}
	route := at(hub, "properties", "routing", "routes").([]any)[0]
	if at(route, "source") != "DeviceMessages" || at(route, "condition") != "$body.temp > 20" {
		t.Errorf("route = %v", route)
	}
	if at(hub, "properties", "minTlsVersion") != "1.2" || len(at(hub, "properties", "ipFilterRules").([]any)) != 1 {
		t.Errorf("unknown members not echoed: %v", hub["properties"])
	}
	if at(hub, "properties", "routing", "fallbackRoute", "name") != "$fallback" {
		t.Errorf("fallback route missing: %v", at(hub, "properties", "routing"))
	}
	// Removing the identity the endpoint uses is refused, with the reason.
	msg := f.flatError(t, "PUT", f.hubID("rg", "routed")+v, `{"location":"westus","sku":{"name":"S1"},"identity":{"type":"None"}}`, 400, "400004")
	if !strings.Contains(msg, "storageContainers[0]") {
		t.Errorf("message: %s", msg)
	}
}

func TestSuppliedPolicies(t *testing.T) {
	f := newFixture(t)
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	f.create(t, "rg", "own-keys", `{"location":"westus","sku":{"name":"S1"},"properties":{"authorizationPolicies":[
	  {"keyName":"iothubowner","rights":"registrywrite,serviceconnect,deviceconnect,registryread","primaryKey":"`+key+`"},
	  {"keyName":"reader","rights":"RegistryRead"}]}}`)
	ps := listKeys(t, f, "rg", "own-keys")
	if len(ps) != 2 || ps[0]["primaryKey"] != key || ps[0]["secondaryKey"] == "" || ps[1]["primaryKey"] == "" ||
		ps[0]["rights"] != "RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect" {
		t.Fatalf("policies = %v", ps)
	}
	// Re-sending a policy without keys keeps its keys.
	resp, _ := f.call(t, "PUT", f.hubID("rg", "own-keys")+v, `{"location":"westus","sku":{"name":"S1"},"properties":{"authorizationPolicies":[{"keyName":"READER","rights":"RegistryRead"}]}}`, 200)
	f.wait(t, resp)
	again := listKeys(t, f, "rg", "own-keys")
	if len(again) != 1 || again[0]["primaryKey"] != ps[1]["primaryKey"] || again[0]["secondaryKey"] != ps[1]["secondaryKey"] {
		t.Errorf("after update: %v, want reader's keys %v", again, ps[1])
	}
}

func TestSystemAssignedIdentityFollowsTheBlock(t *testing.T) {
	f := newFixture(t)
	body := func(typ string) string {
		return `{"location":"westus","sku":{"name":"S1"},"identity":{"type":"` + typ + `"}}`
	}
	hub := f.create(t, "rg", "with-id", body("SystemAssigned"))
	first, _ := at(hub, "identity", "principalId").(string)
	if first == "" || at(hub, "identity", "tenantId") != f.tenant {
		t.Fatalf("identity = %v", hub["identity"])
	}
	p, err := f.st.Principals().Get(t.Context(), first)
	if err != nil || !strings.EqualFold(p.ResourceID, f.hubID("rg", "with-id")) || p.Kind != store.KindManagedIdentity {
		t.Fatalf("principal %s: %+v %v", first, p, err)
	}
	hub = f.update(t, "rg", "with-id", body("None"))
	if hub["identity"].(map[string]any)["type"] != "None" || at(hub, "identity", "principalId") != nil {
		t.Errorf("identity after None = %v", hub["identity"])
	}
	if _, err := f.st.Principals().Get(t.Context(), first); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old principal still there: %v", err)
	}
	hub = f.update(t, "rg", "with-id", body("systemassigned"))
	if second := at(hub, "identity", "principalId"); second == nil || second == first {
		t.Errorf("principal after turning it on again = %v (first %s)", second, first)
	}
	resp, _ := f.call(t, "DELETE", f.hubID("rg", "with-id")+v, "", 202)
	f.wait(t, resp)
	left, _ := f.st.Principals().List(t.Context(), store.PrincipalFilter{ResourceID: f.hubID("rg", "with-id")})
	if len(left) != 0 {
		t.Errorf("principals left after delete: %v", left)
	}
}

func TestReadsAndUsages(t *testing.T) {
	f := newFixture(t)
	f.create(t, "rg", "stats-hub", `{"location":"westus","sku":{"name":"S2","capacity":3}}`)
	f.create(t, "rg", "free-hub", `{"location":"westus","sku":{"name":"F1"}}`)
	base := f.hubID("rg", "stats-hub")
	_, stats := f.call(t, "GET", base+"/IotHubStats"+v, "", 200)
	if !reflect.DeepEqual(stats, map[string]any{"totalDeviceCount": 3.0, "enabledDeviceCount": 2.0, "disabledDeviceCount": 1.0}) {
		t.Errorf("IotHubStats = %v", stats)
	}
	_, skus := f.call(t, "GET", base+"/skus"+v, "", 200)
	var names []string
	for _, s := range skus["value"].([]any) {
		names = append(names, at(s, "sku", "name").(string))
	}
	if !reflect.DeepEqual(names, []string{"S1", "S2", "S3"}) {
		t.Errorf("valid skus of an S2 hub = %v", names)
	}
	_, quota := f.call(t, "GET", base+"/quotaMetrics"+v, "", 200)
	if q := quota["value"].([]any); at(q[0], "maxValue") != 18000000.0 || at(q[1], "currentValue") != 3.0 {
		t.Errorf("quotaMetrics = %v", quota)
	}
	_, health := f.call(t, "GET", base+"/routingEndpointsHealth"+v, "", 200)
	if v, ok := health["value"].([]any); !ok || len(v) != 0 {
		t.Errorf("routingEndpointsHealth = %v", health)
	}
	_, usages := f.call(t, "GET", "/subscriptions/"+f.sub+"/providers/Microsoft.Devices/usages"+v, "", 200)
	u := usages["value"].([]any)
	if at(u[0], "name", "value") != "FreeHubCount" || at(u[0], "currentValue") != 1.0 || at(u[1], "currentValue") != 1.0 {
		t.Errorf("usages = %v", usages)
	}
	f.call(t, "POST", base+"/nothing"+v, "", 405)
}

func TestRuntimeFailureFailsTheOperation(t *testing.T) {
	f := newFixture(t)
	f.runtime.fail = errors.New("stream store is down")
	resp, _ := f.call(t, "PUT", f.hubID("rg", "broken")+v, `{"location":"westus","sku":{"name":"S1"}}`, 201)
	if st := f.wait(t, resp); st["status"] != "Failed" {
		t.Fatalf("operation = %v, want Failed", st)
	}
	_, hub := f.call(t, "GET", f.hubID("rg", "broken")+v, "", 200)
	if at(hub, "properties", "provisioningState") != "Failed" {
		t.Errorf("provisioningState = %v", at(hub, "properties", "provisioningState"))
	}
}
