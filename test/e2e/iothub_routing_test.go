package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/sas"
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

// readBuiltIn reads the messages on a hub's built-in endpoint (what
// `outpost iot hub monitor-events --from-start` prints) for the time given:
// the stream stays open, so whatever arrives in that window is read too.
func readBuiltIn(t *testing.T, s *testserver.Server, hub string, window time.Duration) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.Endpoint+"/outpost/iothubs/"+url.PathEscape(hub)+"/events?fromStart=true", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token(t, testserver.ARMResource))
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("read the built-in endpoint: %s", resp.Status)
	}
	var out []map[string]any
	dec := json.NewDecoder(resp.Body)
	for {
		var line struct{ Event map[string]any }
		if err := dec.Decode(&line); err != nil {
			return out // the window closed
		}
		out = append(out, line.Event)
	}
}

// containerBlobs downloads every blob of a container, in listing order.
func containerBlobs(t *testing.T, blobs *azblob.Client, container string) (names []string, contents [][]byte) {
	t.Helper()
	ctx := context.Background()
	pager := blobs.NewListBlobsFlatPager(container, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			resp, err := blobs.DownloadStream(ctx, container, *b.Name, nil)
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			names, contents = append(names, *b.Name), append(contents, data)
		}
	}
	return names, contents
}

// receiveAll drains a Service Bus queue (receive-and-delete with the
// namespace key) and returns the message bodies.
func receiveAll(t *testing.T, s *testserver.Server, e testEntity, path string) []string {
	t.Helper()
	var out []string
	for _, m := range receiveREST(t, s, e, path) {
		out = append(out, m.Body)
	}
	return out
}

// sbMessage is a message received over Service Bus REST: its body and the
// response headers, which carry BrokerProperties and the custom
// properties.
type sbMessage struct {
	Body   string
	Header http.Header
}

// receiveREST is receiveAll with each message's headers.
func receiveREST(t *testing.T, s *testserver.Server, e testEntity, path string) []sbMessage {
	t.Helper()
	token := sas.SignRawKey("https://"+e.Host+"/"+path, e.Key, "RootManageSharedAccessKey", time.Now().Add(time.Hour))
	var out []sbMessage
	for {
		req, _ := http.NewRequest("DELETE", "https://"+e.Host+"/"+path+"/messages/head?timeout=1", nil)
		req.Header.Set("Authorization", token)
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			out = append(out, sbMessage{Body: string(b), Header: resp.Header})
		case http.StatusNoContent:
			return out
		default:
			t.Fatalf("receive from %s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// TestRoutingIdentitySwitch: a Service Bus queue endpoint switched in place
// from the namespace key to the hub's system-assigned identity, then to a
// user-assigned one, then back to the key. Turning the system-assigned
// identity off is refused naming the endpoint while it uses it, and
// succeeds once it doesn't — and every message sent across the four
// switches reaches the queue, once.
func TestRoutingIdentitySwitch(t *testing.T) {
	s := testserver.Start(t)
	const group = "rg-route-switch"
	ensureGroup(t, s, group)
	sub := s.App.Installation().SubscriptionID
	uami := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/switch-uami"
	uamiDoc := putAndWait(t, s, uami, "2023-01-31", `{"location":"westus"}`)
	q := createMessagingEntity(t, s, group, "Microsoft.ServiceBus", "queues", "")
	h := createHub(t, s, group)
	key := createDevice(t, s, h, "sensor")
	both := `{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"` + uami + `":{}}}`
	if code, body := setHub(t, s, h, both, `{}`); code >= 300 {
		t.Fatalf("identities: %d %v", code, body)
	}
	assignRole(t, s, hubPrincipal(t, s, h), serviceBusDataSender, q.ID)
	assignRole(t, s, uamiDoc["properties"].(map[string]any)["principalId"].(string), serviceBusDataSender, q.ID)
	// endpoint is the hub's routing with the 'orders' endpoint
	// authenticating as auth says.
	endpoint := func(auth string) string {
		return `{"routing":{"endpoints":{"serviceBusQueues":[{"name":"orders",` + auth + `}]},` +
			`"routes":[{"name":"all","source":"DeviceMessages","condition":"true","endpointNames":["orders"],"isEnabled":true}]}}`
	}
	identityBased := func(identity string) string {
		return `"authenticationType":"identityBased"` + identity +
			`,"endpointUri":"sb://` + q.Namespace + `.servicebus.` + s.Config.DNSSuffix + `","entityPath":"` + q.Name + `"`
	}
	keyBased := `"authenticationType":"keyBased","connectionString":"Endpoint=sb://` + q.Host +
		`/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=` + q.Key + `;EntityPath=` + q.Name + `"`
	send := func(n int) {
		runNodeTestEnv(t, s, "iothub-routing.test.mjs", map[string]string{
			"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=sensor;SharedAccessKey=" + key,
			"ROUTE_COUNT":                     strconv.Itoa(n),
		})
	}
	// keyBased → identityBased (system-assigned), in place.
	if code, body := setHub(t, s, h, both, endpoint(keyBased)); code >= 300 {
		t.Fatalf("routing with the namespace key: %d %v", code, body)
	}
	send(10)
	if code, body := setHub(t, s, h, both, endpoint(identityBased(""))); code >= 300 {
		t.Fatalf("switch the endpoint to the system-assigned identity: %d %v", code, body)
	}
	send(10)
	userOnly := `{"type":"UserAssigned","userAssignedIdentities":{"` + uami + `":{}}}`
	code, body := setHub(t, s, h, userOnly, `{}`)
	if msg := fmt.Sprint(body); code != 400 || !strings.Contains(msg, "system-assigned") || !strings.Contains(msg, "orders") {
		t.Fatalf("turning SystemAssigned off while 'orders' uses it: %d %v", code, body)
	}
	if code, body := setHub(t, s, h, both, endpoint(identityBased(`,"identity":{"userAssignedIdentity":"`+uami+`"}`))); code >= 300 {
		t.Fatalf("switch the endpoint to the user-assigned identity: %d %v", code, body)
	}
	send(10)
	if code, body := setHub(t, s, h, userOnly, `{}`); code >= 300 {
		t.Fatalf("turning SystemAssigned off once nothing uses it: %d %v", code, body)
	}
	send(10)
	// identityBased → keyBased again.
	if code, body := setHub(t, s, h, userOnly, endpoint(keyBased)); code >= 300 {
		t.Fatalf("switch the endpoint back to the namespace key: %d %v", code, body)
	}
	send(10)
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < 50 && time.Now().Before(deadline) {
		got = append(got, receiveAll(t, s, q, q.Name)...)
	}
	if len(got) != 50 {
		t.Fatalf("the queue got %d messages across four switches, want 50", len(got))
	}
}

// TestRoutingStorageAvroAndJSON: storage container endpoints — Avro with the
// hub's system-assigned identity, JSON with the account key — write blobs
// named by fileNameFormat; the Avro file decodes with npm avsc, an
// implementation independent of Outpost's.
func TestRoutingStorageAvroAndJSON(t *testing.T) {
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.Hub.RoutingMinBatchFrequency = time.Second }))
	const group = "rg-route-storage"
	acct := createStorageAccount(t, s, group, "", "")
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/avro", storageAPI, `{"properties":{}}`)
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/json", storageAPI, `{"properties":{}}`)
	h := createHub(t, s, group)
	key := createDevice(t, s, h, "sensor")
	if code, body := setHub(t, s, h, `{"type":"SystemAssigned"}`, `{}`); code >= 300 {
		t.Fatalf("identity: %d %v", code, body)
	}
	assignRole(t, s, hubPrincipal(t, s, h), storageBlobDataContributor, acct.ID)
	conn := "DefaultEndpointsProtocol=https;AccountName=" + acct.Name + ";AccountKey=" + acct.Key + ";EndpointSuffix=" + s.Config.DNSSuffix
	routing := `{"routing":{"endpoints":{"storageContainers":[
	  {"name":"avro","authenticationType":"identityBased","endpointUri":"https://` + acct.Name + `.blob.` + s.Config.DNSSuffix + `","containerName":"avro","encoding":"Avro","batchFrequencyInSeconds":1},
	  {"name":"json","connectionString":"` + conn + `","containerName":"json","encoding":"JSON","batchFrequencyInSeconds":1}]},
	  "routes":[{"name":"to-avro","source":"DeviceMessages","condition":"true","endpointNames":["avro"],"isEnabled":true},
	            {"name":"to-json","source":"DeviceMessages","condition":"level = 'critical'","endpointNames":["json"],"isEnabled":true}]}}`
	if code, body := setHub(t, s, h, `{"type":"SystemAssigned"}`, routing); code >= 300 {
		t.Fatalf("routing: %d %v", code, body)
	}
	runNodeTestEnv(t, s, "iothub-routing.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=sensor;SharedAccessKey=" + key,
		"ROUTE_COUNT":                     "12",
	})
	cred, _ := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
	blobs, _ := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, cred, blobOptions(s))
	var avroRecords, jsonRecords int
	deadline := time.Now().Add(40 * time.Second)
	for (avroRecords < 12 || jsonRecords < 4) && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		avroRecords, jsonRecords = 0, 0
		names, files := containerBlobs(t, blobs, "avro")
		for i, f := range files {
			if !strings.HasPrefix(names[i], h.Name+"/") {
				t.Fatalf("avro blob name %q does not follow {iothub}/{partition}/…", names[i])
			}
			path := filepath.Join(t.TempDir(), "routed.avro")
			os.WriteFile(path, f, 0o600)
			cmd := exec.Command("node", "avro-decode.mjs", path)
			cmd.Dir = clientsDir(t)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("avsc could not decode %s: %v", names[i], err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				var rec struct {
					Body             string
					SystemProperties map[string]string
					Properties       map[string]string
				}
				if json.Unmarshal([]byte(line), &rec) != nil || rec.SystemProperties["connectionDeviceId"] != "sensor" || rec.Properties["level"] == "" {
					t.Fatalf("avro record %s", line)
				}
				avroRecords++
			}
		}
		_, jfiles := containerBlobs(t, blobs, "json")
		for _, f := range jfiles {
			jsonRecords += strings.Count(strings.TrimSpace(string(f)), "\n") + 1
		}
	}
	if avroRecords != 12 || jsonRecords != 4 {
		t.Fatalf("avro records %d (want 12), json records %d (want the 4 critical ones)", avroRecords, jsonRecords)
	}
}

// TestRoutingPrivateTarget: a storage account closed to the public with the
// trusted-services bypass. The endpoint using the hub's system-assigned
// identity delivers; the one using its user-assigned identity is refused by
// the network rule, and its health shows the reason.
func TestRoutingPrivateTarget(t *testing.T) {
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.Hub.RoutingMinBatchFrequency = time.Second }))
	const group = "rg-route-private"
	acct := createStorageAccount(t, s, group, `{"publicNetworkAccess":"Disabled","networkAcls":{"bypass":"AzureServices","defaultAction":"Deny"}}`, "")
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/sys", storageAPI, `{"properties":{}}`)
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/usr", storageAPI, `{"properties":{}}`)
	sub := s.App.Installation().SubscriptionID
	uami := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/private-uami"
	uamiDoc := putAndWait(t, s, uami, "2023-01-31", `{"location":"westus"}`)
	h := createHub(t, s, group)
	key := createDevice(t, s, h, "sensor")
	both := `{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"` + uami + `":{}}}`
	if code, body := setHub(t, s, h, both, `{}`); code >= 300 {
		t.Fatalf("identities: %d %v", code, body)
	}
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	assignRole(t, s, hubPrincipal(t, s, h), storageBlobDataContributor, acct.ID)
	assignRole(t, s, uamiDoc["properties"].(map[string]any)["principalId"].(string), storageBlobDataContributor, acct.ID)
	blobURI := "https://" + acct.Name + ".blob." + s.Config.DNSSuffix
	routing := `{"routing":{"endpoints":{"storageContainers":[
	  {"name":"sys","authenticationType":"identityBased","endpointUri":"` + blobURI + `","containerName":"sys","encoding":"JSON","batchFrequencyInSeconds":1},
	  {"name":"usr","authenticationType":"identityBased","identity":{"userAssignedIdentity":"` + uami + `"},"endpointUri":"` + blobURI + `","containerName":"usr","encoding":"JSON","batchFrequencyInSeconds":1}]},
	  "routes":[{"name":"a","source":"DeviceMessages","condition":"true","endpointNames":["sys"],"isEnabled":true},
	            {"name":"b","source":"DeviceMessages","condition":"true","endpointNames":["usr"],"isEnabled":true}]}}`
	if code, body := setHub(t, s, h, both, routing); code >= 300 {
		t.Fatalf("routing: %d %v", code, body)
	}
	runNodeTestEnv(t, s, "iothub-routing.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=sensor;SharedAccessKey=" + key,
		"ROUTE_COUNT":                     "5",
	})
	var sys, usr map[string]any
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		_, health := op.do("GET", h.ID+"/routingEndpointsHealth?api-version=2023-06-30", "")
		list, _ := health["value"].([]any)
		for _, e := range list {
			m := e.(map[string]any)
			switch m["endpointId"] {
			case "sys":
				sys = m
			case "usr":
				usr = m
			}
		}
		if sys != nil && usr != nil && sys["lastSuccessfulSendAttemptTime"] != nil && usr["lastKnownError"] != nil {
			break
		}
	}
	if sys == nil || sys["healthStatus"] != "healthy" || sys["lastSuccessfulSendAttemptTime"] == nil {
		t.Errorf("system-assigned endpoint through the trusted bypass: %v", sys)
	}
	if msg := fmt.Sprint(usr["lastKnownError"]); usr == nil || usr["healthStatus"] == "healthy" || !strings.Contains(msg, "user-assigned identity needs public network access") {
		t.Errorf("user-assigned endpoint on private storage: %v", usr)
	}
}

// TestRouteTestAPIs: $testnew evaluates one route against a sample message
// (and reports compilation errors with their position); $testall lists the
// hub's routes a sample message matches.
func TestRouteTestAPIs(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-route-tests")
	routing := `{"routing":{"routes":[
	  {"name":"hot","source":"DeviceMessages","condition":"$body.temp > 25","endpointNames":["events"],"isEnabled":true},
	  {"name":"critical","source":"DeviceMessages","condition":"level = 'critical'","endpointNames":["events"],"isEnabled":true}]}}`
	if code, body := setHub(t, s, h, `{"type":"None"}`, routing); code >= 300 {
		t.Fatalf("routes: %d %v", code, body)
	}
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	msg := `{"body":"{\"temp\":30}","appProperties":{"level":"critical"},"systemProperties":{"contentType":"application/json","contentEncoding":"utf-8"}}`
	code, res := op.do("POST", h.ID+"/routing/routes/$testnew?api-version=2023-06-30",
		`{"message":`+msg+`,"route":{"name":"t","source":"DeviceMessages","condition":"$body.temp > 25 AND level = 'critical'","endpointNames":["events"],"isEnabled":true}}`)
	if code != 200 || res["result"] != "true" {
		t.Fatalf("$testnew: %d %v", code, res)
	}
	code, res = op.do("POST", h.ID+"/routing/routes/$testnew?api-version=2023-06-30",
		`{"message":`+msg+`,"route":{"name":"t","source":"DeviceMessages","condition":"STARTSWITH(level, 'c')","endpointNames":["events"],"isEnabled":true}}`)
	errs, _ := res["details"].(map[string]any)["compilationErrors"].([]any)
	if code != 200 || res["result"] != "undefined" || len(errs) == 0 {
		t.Fatalf("$testnew with a bad condition: %d %v", code, res)
	}
	code, res = op.do("POST", h.ID+"/routing/routes/$testall?api-version=2023-06-30", `{"routingSource":"DeviceMessages","message":`+msg+`}`)
	routes, _ := res["routes"].([]any)
	if code != 200 || len(routes) != 2 {
		t.Fatalf("$testall: %d %v", code, res)
	}
}

// TestRoutingServiceBusTopic: a key-based Service Bus topic endpoint (the
// namespace's connection string); a subscription of the topic receives the
// messages the route selects.
func TestRoutingServiceBusTopic(t *testing.T) {
	s := testserver.Start(t)
	const group = "rg-route-topic"
	topic := createMessagingEntity(t, s, group, "Microsoft.ServiceBus", "topics", "")
	putAndWait(t, s, topic.ID+"/subscriptions/all", serviceBusAPI, `{"properties":{}}`)
	h := createHub(t, s, group)
	key := createDevice(t, s, h, "sensor")
	conn := "Endpoint=sb://" + topic.Host + "/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + topic.Key + ";EntityPath=" + topic.Name
	routing := `{"routing":{"endpoints":{"serviceBusTopics":[{"name":"alerts","connectionString":"` + conn + `"}]},
	  "routes":[{"name":"critical","source":"DeviceMessages","condition":"level = 'critical'","endpointNames":["alerts"],"isEnabled":true}]}}`
	if code, body := setHub(t, s, h, `{"type":"None"}`, routing); code >= 300 {
		t.Fatalf("routing: %d %v", code, body)
	}
	runNodeTestEnv(t, s, "iothub-routing.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=sensor;SharedAccessKey=" + key,
		"ROUTE_COUNT":                     "9",
	})
	var got []string
	for deadline := time.Now().Add(30 * time.Second); len(got) < 3 && time.Now().Before(deadline); {
		got = append(got, receiveAll(t, s, topic, topic.Name+"/subscriptions/all")...)
	}
	if len(got) != 3 {
		t.Fatalf("the subscription got %d messages, want the 3 critical ones: %v", len(got), got)
	}
}

// TestRoutingStorageIntoAzuriteByIdentity: an identity-based storage
// endpoint that names an Azurite started with `--oauth basic` (HTTPS,
// Bearer tokens checked for issuer and audience): the hub's system-assigned
// identity token from Outpost's issuer is accepted, and the routed records
// land in Azurite — the same endpoint could name real Azure.
func TestRoutingStorageIntoAzuriteByIdentity(t *testing.T) {
	endpoint, caFile := startAzurite(t, "--oauth", "basic")
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) {
		c.Hub.RoutingMinBatchFrequency = time.Second
		c.Egress.Allow = []string{u.Host}
		c.Egress.CAFiles = []string{caFile}
	}))
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(caPEM)
	cred, _ := azblob.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	blobs, err := azblob.NewClientWithSharedKeyCredential(endpoint+"/", cred, &azblob.ClientOptions{ClientOptions: policy.ClientOptions{
		Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := blobs.CreateContainer(ctx, "routed", nil); err != nil {
		t.Fatalf("create container in Azurite: %v", err)
	}
	h := createHub(t, s, "rg-route-azurite")
	key := createDevice(t, s, h, "sensor")
	routing := `{"routing":{"endpoints":{"storageContainers":[
	  {"name":"azurite","authenticationType":"identityBased","endpointUri":"` + endpoint + `","containerName":"routed","encoding":"JSON","batchFrequencyInSeconds":1}]},
	  "routes":[{"name":"all","source":"DeviceMessages","condition":"true","endpointNames":["azurite"],"isEnabled":true}]}}`
	if code, body := setHub(t, s, h, `{"type":"SystemAssigned"}`, routing); code >= 300 {
		t.Fatalf("routing: %d %v", code, body)
	}
	runNodeTestEnv(t, s, "iothub-routing.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=sensor;SharedAccessKey=" + key,
		"ROUTE_COUNT":                     "6",
	})
	records := 0
	for deadline := time.Now().Add(40 * time.Second); records < 6 && time.Now().Before(deadline); time.Sleep(time.Second) {
		records = 0
		_, files := containerBlobs(t, blobs, "routed")
		for _, data := range files {
			records += strings.Count(strings.TrimSpace(string(data)), "\n") + 1
		}
	}
	if records != 6 {
		op := armCall{t, s, s.Token(t, testserver.ARMResource)}
		_, health := op.do("GET", h.ID+"/routingEndpointsHealth?api-version=2023-06-30", "")
		t.Fatalf("Azurite holds %d routed records, want 6; endpoint health %v", records, health)
	}
}

// TestRoutingRoleRemovedMidStream: an event hub, a Service Bus queue and a
// storage endpoint, all using the hub's system-assigned identity. The npm
// device SDK sends; the roles are removed and it sends more, which the hub
// accepts while every endpoint turns unhealthy with the target's refusal
// (401 from Event Hubs and Service Bus, 403 from storage); the roles come
// back and every message arrives, once, in the order sent.
func TestRoutingRoleRemovedMidStream(t *testing.T) {
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) {
		c.Hub.RoutingMinBatchFrequency = time.Second
		c.Hub.RoutingUnhealthyAfter = 2 * time.Second
	}))
	const group = "rg-route-role"
	q := createMessagingEntity(t, s, group, "Microsoft.ServiceBus", "queues", "")
	eh := createMessagingEntity(t, s, group, "Microsoft.EventHub", "eventhubs", "")
	acct := createStorageAccount(t, s, group, "", "")
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/archive", storageAPI, `{"properties":{}}`)
	h := createHub(t, s, group)
	key := createDevice(t, s, h, "sensor")
	if code, body := setHub(t, s, h, `{"type":"SystemAssigned"}`, `{}`); code >= 300 {
		t.Fatalf("identity: %d %v", code, body)
	}
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	principal := hubPrincipal(t, s, h)
	sub := s.App.Installation().SubscriptionID
	grant := func(scope, role, name string) string {
		id := scope + "/providers/Microsoft.Authorization/roleAssignments/" + name
		body := `{"properties":{"roleDefinitionId":"/subscriptions/` + sub + `/providers/Microsoft.Authorization/roleDefinitions/` + role +
			`","principalId":"` + principal + `","principalType":"ServicePrincipal"}}`
		if code, resp := op.do("PUT", id+"?api-version=2022-04-01", body); code != 201 {
			t.Fatalf("assign %s at %s: %d %v", role, scope, code, resp)
		}
		return id
	}
	sbRole := grant(q.ID, serviceBusDataSender, "4b1f0c9e-2a57-4d1e-9f0a-1c2d3e4f5a60")
	blobRole := grant(acct.ID, storageBlobDataContributor, "4b1f0c9e-2a57-4d1e-9f0a-1c2d3e4f5a61")
	ehRole := grant(eh.ID, eventHubsDataSender, "4b1f0c9e-2a57-4d1e-9f0a-1c2d3e4f5a64")
	routing := `{"routing":{"endpoints":{
	    "eventHubs":[{"name":"hot","authenticationType":"identityBased","endpointUri":"sb://` + eh.Namespace + `.servicebus.` + s.Config.DNSSuffix + `","entityPath":"` + eh.Name + `"}],
	    "serviceBusQueues":[{"name":"orders","authenticationType":"identityBased","endpointUri":"sb://` + q.Namespace + `.servicebus.` + s.Config.DNSSuffix + `","entityPath":"` + q.Name + `"}],
	    "storageContainers":[{"name":"archive","authenticationType":"identityBased","endpointUri":"https://` + acct.Name + `.blob.` + s.Config.DNSSuffix + `","containerName":"archive","encoding":"JSON","batchFrequencyInSeconds":1}]},
	  "routes":[{"name":"to-queue","source":"DeviceMessages","condition":"true","endpointNames":["orders"],"isEnabled":true},
	            {"name":"to-hot","source":"DeviceMessages","condition":"true","endpointNames":["hot"],"isEnabled":true},
	            {"name":"to-archive","source":"DeviceMessages","condition":"true","endpointNames":["archive"],"isEnabled":true}]}}`
	if code, body := setHub(t, s, h, `{"type":"SystemAssigned"}`, routing); code >= 300 {
		t.Fatalf("routing: %d %v", code, body)
	}
	// Every round of sends numbers its messages from 0.
	send := func(n int) {
		runNodeTestEnv(t, s, "iothub-routing.test.mjs", map[string]string{
			"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=sensor;SharedAccessKey=" + key,
			"ROUTE_COUNT":                     strconv.Itoa(n),
		})
	}
	health := func() map[string]map[string]any {
		_, body := op.do("GET", h.ID+"/routingEndpointsHealth?api-version=2023-06-30", "")
		out := map[string]map[string]any{}
		for _, v := range body["value"].([]any) {
			e := v.(map[string]any)
			out[e["endpointId"].(string)] = e
		}
		return out
	}
	var queued []string
	drain := func(want int) {
		deadline := time.Now().Add(60 * time.Second)
		for len(queued) < want && time.Now().Before(deadline) {
			queued = append(queued, receiveAll(t, s, q, q.Name)...)
		}
	}
	cred, _ := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
	blobs, _ := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, cred, blobOptions(s))
	archived := func() (lines []string) {
		_, files := containerBlobs(t, blobs, "archive")
		for _, data := range files {
			lines = append(lines, strings.Split(strings.TrimSpace(string(data)), "\n")...)
		}
		return lines
	}
	// The event hub's events as bodies, in partition and sequence order
	// (the device id is the partition key: one partition holds them all).
	hubbed := func() (bodies []string) {
		events := readEventHub(t, s, eh)
		sort.SliceStable(events, func(i, j int) bool {
			pi, pj := fmt.Sprint(events[i]["partitionId"]), fmt.Sprint(events[j]["partitionId"])
			if pi != pj {
				return pi < pj
			}
			si, _ := events[i]["sequenceNumber"].(float64)
			sj, _ := events[j]["sequenceNumber"].(float64)
			return si < sj
		})
		partitions := map[string]bool{}
		for _, ev := range events {
			partitions[fmt.Sprint(ev["partitionId"])] = true
			body, _ := ev["body"].(string)
			bodies = append(bodies, body)
		}
		if len(partitions) > 1 {
			t.Fatalf("one device's events landed on partitions %v", partitions)
		}
		return bodies
	}
	// waitFor reads until it has want items or a minute has passed.
	waitFor := func(want int, read func() []string) []string {
		var got []string
		deadline := time.Now().Add(60 * time.Second)
		for len(got) < want && time.Now().Before(deadline) {
			time.Sleep(250 * time.Millisecond)
			got = read()
		}
		return got
	}
	waitHubbed := func(want int) []string { return waitFor(want, hubbed) }
	waitArchived := func(want int) []string { return waitFor(want, archived) }

	send(10)
	drain(10)
	if len(queued) != 10 || len(waitArchived(10)) != 10 || len(waitHubbed(10)) != 10 {
		t.Fatalf("before the role removal: queue %d, archive %d, event hub %d, want 10 each", len(queued), len(archived()), len(hubbed()))
	}

	for _, id := range []string{sbRole, blobRole, ehRole} {
		if code, body := op.do("DELETE", id+"?api-version=2022-04-01", ""); code != 200 {
			t.Fatalf("remove role: %d %v", code, body)
		}
	}
	send(15) // the hub still accepts every message
	var hs map[string]map[string]any
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		hs = health()
		if hs["orders"]["healthStatus"] == "unhealthy" && hs["archive"]["healthStatus"] == "unhealthy" && hs["hot"]["healthStatus"] == "unhealthy" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if hs["orders"]["healthStatus"] != "unhealthy" || !strings.HasPrefix(fmt.Sprint(hs["orders"]["lastKnownError"]), "401 ") {
		t.Fatalf("the queue endpoint without its role: %v", hs["orders"])
	}
	if hs["hot"]["healthStatus"] != "unhealthy" || !strings.HasPrefix(fmt.Sprint(hs["hot"]["lastKnownError"]), "401 ") {
		t.Fatalf("the event hub endpoint without its role: %v", hs["hot"])
	}
	if hs["archive"]["healthStatus"] != "unhealthy" || !strings.HasPrefix(fmt.Sprint(hs["archive"]["lastKnownError"]), "403 ") ||
		!strings.Contains(fmt.Sprint(hs["archive"]["lastKnownError"]), "AuthorizationPermissionMismatch") {
		t.Fatalf("the storage endpoint without its role: %v", hs["archive"])
	}
	if got := receiveAll(t, s, q, q.Name); len(got) != 0 {
		t.Fatalf("%d messages reached the queue without the role", len(got))
	}
	if got := hubbed(); len(got) != 10 {
		t.Fatalf("the event hub holds %d events without the role, want the first 10", len(got))
	}

	grant(q.ID, serviceBusDataSender, "4b1f0c9e-2a57-4d1e-9f0a-1c2d3e4f5a62")
	grant(acct.ID, storageBlobDataContributor, "4b1f0c9e-2a57-4d1e-9f0a-1c2d3e4f5a63")
	grant(eh.ID, eventHubsDataSender, "4b1f0c9e-2a57-4d1e-9f0a-1c2d3e4f5a65")
	drain(25)
	lines := waitArchived(25)
	waitHubbed(25)
	// The first round's seq 0..9, then the second's 0..14: in order, and
	// once each — a refused batch was not delivered, so its retry is no
	// duplicate.
	seqs := func(bodies []string) []int {
		var out []int
		for _, b := range bodies {
			var m struct {
				Seq  *int
				Body struct{ Seq int }
			}
			if err := json.Unmarshal([]byte(b), &m); err != nil {
				t.Fatalf("message %q: %v", b, err)
			}
			if m.Seq != nil {
				out = append(out, *m.Seq)
			} else {
				out = append(out, m.Body.Seq)
			}
		}
		return out
	}
	var want []int
	for i := range 10 {
		want = append(want, i)
	}
	for i := range 15 {
		want = append(want, i)
	}
	if got := seqs(queued); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("queue got %v, want %v", got, want)
	}
	if got := seqs(lines); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("archive got %v, want %v", got, want)
	}
	time.Sleep(time.Second) // no duplicate may follow
	if events := hubbed(); fmt.Sprint(seqs(events)) != fmt.Sprint(want) {
		t.Errorf("event hub got %v, want %v", seqs(events), want)
	}
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if hs = health(); hs["orders"]["healthStatus"] == "healthy" && hs["archive"]["healthStatus"] == "healthy" && hs["hot"]["healthStatus"] == "healthy" {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Errorf("health after the roles came back: %v", hs)
}
