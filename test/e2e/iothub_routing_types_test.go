package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// routedMessage is one message as a routing target hands it back, with
// IoT Hub's system properties read from wherever that target keeps them.
type routedMessage struct {
	Body        string
	DeviceID    string
	MessageID   string
	ContentType string
	Source      string // iothub-message-source; storage records don't carry it
	Enqueued    string
	App         map[string]string
	Raw         any // what the target returned, for failure messages
}

// routingTarget is one endpoint type of the seed's scenario.
type routingTarget struct {
	name     string
	audience string
	// hasSource: the target shows iothub-message-source.
	hasSource bool
	// setup creates the target in the group, gives the principal the data
	// role at the entity's own scope, and returns the routing "endpoints"
	// member for one identity-based endpoint named "hot" using uami, and a
	// reader of everything the target has received so far.
	setup func(t *testing.T, s *testserver.Server, env routingEnv) (endpoints string, read func() []routedMessage)
}

type routingEnv struct {
	group, uami, principal string
	hub                    testHub
}

// identityJSON is the endpoint members naming the user-assigned identity.
func (env routingEnv) identityJSON() string {
	return `"authenticationType":"identityBased","identity":{"userAssignedIdentity":"` + env.uami + `"}`
}

// TestRoutingUserAssignedEndpoints is the seed's routing scenario on each
// custom endpoint type: a hub whose user-assigned identity holds the
// target's data role at the entity's scope (the event hub, queue, topic or
// container), an identity-based endpoint, a route whose condition reads
// $body and an application property, and the fallback route to the
// built-in endpoint. The npm device SDK sends; the target receives exactly
// the matching messages with IoT Hub's system properties and the
// application properties, the built-in endpoint exactly the others, and
// the router asked the issuer for one token.
func TestRoutingUserAssignedEndpoints(t *testing.T) {
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.Hub.RoutingMinBatchFrequency = time.Second }))
	targets := []routingTarget{
		{name: "eventhub", audience: eventHubsResource, hasSource: true, setup: eventHubTarget},
		{name: "servicebus-queue", audience: serviceBusResource, hasSource: true, setup: serviceBusTarget("queues", "serviceBusQueues")},
		{name: "servicebus-topic", audience: serviceBusResource, hasSource: true, setup: serviceBusTarget("topics", "serviceBusTopics")},
		{name: "storage-avro", audience: storageResource, setup: storageTarget("Avro")},
		{name: "storage-json", audience: storageResource, setup: storageTarget("JSON")},
	}
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testRoutingUserAssigned(t, s, tc)
		})
	}
}

func testRoutingUserAssigned(t *testing.T, s *testserver.Server, tc routingTarget) {
	group := "rg-route-ua-" + tc.name
	ensureGroup(t, s, group)
	sub := s.App.Installation().SubscriptionID
	env := routingEnv{group: group, uami: "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/route-uami"}
	uamiDoc := putAndWait(t, s, env.uami, "2023-01-31", `{"location":"westus"}`)
	env.principal = uamiDoc["properties"].(map[string]any)["principalId"].(string)
	env.hub = createHub(t, s, group)
	h := env.hub
	key := createDevice(t, s, h, "sensor")
	endpoints, read := tc.setup(t, s, env)
	routing := `{"routing":{"endpoints":{` + endpoints + `},
	  "routes":[{"name":"hot-critical","source":"DeviceMessages","condition":"$body.temp >= 25 AND level = 'critical'","endpointNames":["hot"],"isEnabled":true}],
	  "fallbackRoute":{"name":"$fallback","source":"DeviceMessages","condition":"true","endpointNames":["events"],"isEnabled":true}}}`
	if code, body := setHub(t, s, h, `{"type":"UserAssigned","userAssignedIdentities":{"`+env.uami+`":{}}}`, routing); code >= 300 {
		t.Fatalf("routing settings: %d %v", code, body)
	}
	const n = 30
	runNodeTestEnv(t, s, "iothub-routing.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=sensor;SharedAccessKey=" + key,
		"ROUTE_COUNT":                     strconv.Itoa(n),
	})
	// What iothub-routing.test.mjs sends: temp 20 + seq%10, level
	// critical for every third seq.
	want := map[int]bool{}
	for i := range n {
		if i%3 == 0 && 20+i%10 >= 25 {
			want[i] = true
		}
	}

	var got []routedMessage
	for deadline := time.Now().Add(40 * time.Second); len(got) < len(want) && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		got = read()
	}
	time.Sleep(1500 * time.Millisecond) // nothing more may arrive
	got = read()
	if len(got) != len(want) {
		t.Fatalf("the %s got %d messages, want the %d matching ones: %+v", tc.name, len(got), len(want), got)
	}
	seen := map[int]bool{}
	for _, m := range got {
		var body struct{ Seq, Temp int }
		if err := json.Unmarshal([]byte(m.Body), &body); err != nil || !want[body.Seq] || seen[body.Seq] {
			t.Errorf("routed message %+v", m)
			continue
		}
		seen[body.Seq] = true
		if m.DeviceID != "sensor" || m.MessageID != "route-"+strconv.Itoa(body.Seq) || m.ContentType != "application/json" ||
			tc.hasSource && m.Source != "Telemetry" || m.Enqueued == "" || m.App["level"] != "critical" {
			t.Errorf("routed message %d: device %q, message id %q, content type %q, source %q, enqueued %q, application properties %v; as the target returned it: %v",
				body.Seq, m.DeviceID, m.MessageID, m.ContentType, m.Source, m.Enqueued, m.App, m.Raw)
		}
	}

	// The built-in endpoint gets exactly the others, through the fallback
	// route (IoT Hub stops sending every message there once routes exist).
	builtIn := readBuiltIn(t, s, h.Name, 3*time.Second)
	if len(builtIn) != n-len(want) {
		t.Fatalf("the built-in endpoint got %d messages, want the %d that matched no route", len(builtIn), n-len(want))
	}
	for _, ev := range builtIn {
		var body struct{ Seq int }
		raw, _ := json.Marshal(ev["payload"])
		if err := json.Unmarshal(raw, &body); err != nil || want[body.Seq] {
			t.Errorf("built-in endpoint message %v", ev)
		}
	}

	// One token from the issuer for the whole run, counted on /metrics.
	series := `outpost_routing_token_requests_total{audience="` + tc.audience + `",hub="` + strings.ToLower(h.Name) +
		`",identity="` + strings.ToLower(env.uami) + `"}`
	if v, ok := scrapeMetrics(t, s)[series]; !ok || v != 1 {
		t.Errorf("%s = %v (present %v), want 1", series, v, ok)
	}
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	_, health := op.do("GET", h.ID+"/routingEndpointsHealth?api-version=2023-06-30", "")
	for _, v := range health["value"].([]any) {
		if e := v.(map[string]any); e["endpointId"] == "hot" && e["healthStatus"] != "healthy" {
			t.Errorf("the endpoint delivered but reports %v", e)
		}
	}
}

// eventHubTarget: an event hub; Azure Event Hubs Data Sender on it.
func eventHubTarget(t *testing.T, s *testserver.Server, env routingEnv) (string, func() []routedMessage) {
	e := createMessagingEntity(t, s, env.group, "Microsoft.EventHub", "eventhubs", "")
	assignRole(t, s, env.principal, eventHubsDataSender, e.ID)
	endpoints := `"eventHubs":[{"name":"hot",` + env.identityJSON() + `,
	  "endpointUri":"sb://` + e.Namespace + `.servicebus.` + s.Config.DNSSuffix + `","entityPath":"` + e.Name + `"}]`
	return endpoints, func() []routedMessage {
		var out []routedMessage
		for _, ev := range readEventHub(t, s, e) {
			// System and application properties share the event's
			// properties; the enqueued time is a number (epoch ms).
			props, _ := ev["properties"].(map[string]any)
			app := map[string]string{}
			for k, v := range props {
				app[k] = fmt.Sprint(v)
			}
			body, _ := ev["body"].(string)
			out = append(out, routedMessage{Body: body, DeviceID: app["iothub-connection-device-id"], MessageID: app["message-id"],
				ContentType: app["content-type"], Source: app["iothub-message-source"], Enqueued: app["iothub-enqueuedtime"], App: app, Raw: ev})
		}
		return out
	}
}

// serviceBusTarget: a queue, or a topic with a subscription; Azure Service
// Bus Data Sender on the entity. IoT Hub's message id and content type
// travel as broker properties, the rest as custom properties.
func serviceBusTarget(collection, member string) func(*testing.T, *testserver.Server, routingEnv) (string, func() []routedMessage) {
	return func(t *testing.T, s *testserver.Server, env routingEnv) (string, func() []routedMessage) {
		e := createMessagingEntity(t, s, env.group, "Microsoft.ServiceBus", collection, "")
		path := e.Name
		if collection == "topics" {
			putAndWait(t, s, e.ID+"/subscriptions/all", serviceBusAPI, `{"properties":{}}`)
			path += "/subscriptions/all"
		}
		assignRole(t, s, env.principal, serviceBusDataSender, e.ID)
		endpoints := `"` + member + `":[{"name":"hot",` + env.identityJSON() + `,
		  "endpointUri":"sb://` + e.Namespace + `.servicebus.` + s.Config.DNSSuffix + `","entityPath":"` + e.Name + `"}]`
		var out []routedMessage // receiving deletes: keep what was read
		return endpoints, func() []routedMessage {
			for _, m := range receiveREST(t, s, e, path) {
				var broker struct{ MessageId, ContentType string }
				if err := json.Unmarshal([]byte(m.Header.Get("BrokerProperties")), &broker); err != nil {
					t.Fatalf("BrokerProperties %q: %v", m.Header.Get("BrokerProperties"), err)
				}
				// Custom properties are headers with JSON values.
				custom := func(name string) string {
					v := m.Header.Get(name)
					if u, err := strconv.Unquote(v); err == nil {
						return u
					}
					return v
				}
				out = append(out, routedMessage{Body: m.Body, DeviceID: custom("iothub-connection-device-id"), MessageID: broker.MessageId,
					ContentType: broker.ContentType, Source: custom("iothub-message-source"), Enqueued: custom("iothub-enqueuedtime"),
					App: map[string]string{"level": custom("level")}, Raw: m})
			}
			return out
		}
	}
}

// storageTarget: a container; Storage Blob Data Contributor on the
// container itself. Avro files are decoded with npm avsc, independent of
// the Go library Outpost encodes with.
func storageTarget(encoding string) func(*testing.T, *testserver.Server, routingEnv) (string, func() []routedMessage) {
	return func(t *testing.T, s *testserver.Server, env routingEnv) (string, func() []routedMessage) {
		acct := createStorageAccount(t, s, env.group, "", "")
		containerID := acct.ID + "/blobServices/default/containers/routed"
		putAndWait(t, s, containerID, storageAPI, `{"properties":{}}`)
		assignRole(t, s, env.principal, storageBlobDataContributor, containerID)
		endpoints := `"storageContainers":[{"name":"hot",` + env.identityJSON() + `,
		  "endpointUri":"https://` + acct.Name + `.blob.` + s.Config.DNSSuffix + `","containerName":"routed","encoding":"` + encoding + `","batchFrequencyInSeconds":1}]`
		cred, _ := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
		blobs, _ := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, cred, blobOptions(s))
		return endpoints, func() []routedMessage {
			var out []routedMessage
			names, files := containerBlobs(t, blobs, "routed")
			for i, f := range files {
				if !strings.HasPrefix(names[i], env.hub.Name+"/") {
					t.Fatalf("blob name %q does not follow {iothub}/{partition}/…", names[i])
				}
				lines := strings.Split(strings.TrimSpace(string(f)), "\n")
				if encoding == "Avro" {
					lines = avscRecords(t, f)
				}
				for _, line := range lines {
					var rec struct {
						Body             json.RawMessage
						SystemProperties map[string]string
						Properties       map[string]string
					}
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Fatalf("%s record %s: %v", encoding, line, err)
					}
					body := string(rec.Body) // JSON: the body embedded
					if encoding == "Avro" {
						_ = json.Unmarshal(rec.Body, &body) // avsc: the bytes as a string
					}
					sys := rec.SystemProperties
					out = append(out, routedMessage{Body: body, DeviceID: sys["connectionDeviceId"], MessageID: sys["messageId"],
						ContentType: sys["contentType"], Enqueued: sys["enqueuedTime"], App: rec.Properties, Raw: line})
				}
			}
			return out
		}
	}
}

// avscRecords decodes an Avro object container file with npm avsc and
// returns its records as JSON lines.
func avscRecords(t *testing.T, file []byte) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routed.avro")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "avro-decode.mjs", path)
	cmd.Dir = clientsDir(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("avsc could not decode the blob: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}
