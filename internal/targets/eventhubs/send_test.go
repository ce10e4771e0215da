package eventhubs_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
)

func sign(ns, eh, keyName, key string, expiry time.Time) string {
	return sas.SignRawKey("https://"+ns+".servicebus."+suffix+"/"+eh, key, keyName, expiry)
}

func readAll(t *testing.T, f *fixture, ns, eh, partition string) []eventhubs.Event {
	t.Helper()
	evs, err := f.handler.Read(context.Background(), ns, eh, "$Default", partition, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestSendSingleAndRead(t *testing.T) {
	f := newFixture(t)
	key := f.namespace(t, "ns-single", "telemetry", "Standard")
	tok := sign("ns-single", "telemetry", "RootManageSharedAccessKey", key, time.Now().Add(time.Hour))

	status, body := f.send(t, "ns-single", "/telemetry/messages?timeout=60&api-version=2014-01", tok,
		"application/atom+xml;type=entry;charset=utf-8", `{"temp":21}`,
		"BrokerProperties", `{"PartitionKey":"device-1","MessageId":"m1"}`, "Priority", `"High"`, "Count", "3", "Plain", "text")
	if status != http.StatusCreated {
		t.Fatalf("send = %d %s", status, body)
	}
	p := eventhubs.PartitionForKey("device-1", 4)
	evs := readAll(t, f, "ns-single", "telemetry", fmt.Sprint(p))
	if len(evs) != 1 {
		t.Fatalf("read %d events from partition %d, want 1", len(evs), p)
	}
	e := evs[0]
	if string(e.Body) != `{"temp":21}` || e.SequenceNumber != 0 || e.Offset != "0" || e.PartitionKey != "device-1" || e.MessageID != "m1" {
		t.Errorf("event = %+v", e)
	}
	if e.Properties["Priority"] != "High" || e.Properties["Count"] != float64(3) || e.Properties["Plain"] != "text" {
		t.Errorf("properties = %v", e.Properties)
	}
	if _, ok := e.Properties["Authorization"]; ok {
		t.Error("the Authorization header became a property")
	}
	if time.Since(e.EnqueuedTime) > time.Minute || e.SystemProperties()[eventhubs.PropSequenceNumber] != int64(0) {
		t.Errorf("system properties = %v", e.SystemProperties())
	}
}

func TestSendBatchPartitionsAndSequences(t *testing.T) {
	f := newFixture(t)
	key := f.namespace(t, "ns-batch", "events", "Standard")
	tok := sign("ns-batch", "events", "RootManageSharedAccessKey", key, time.Now().Add(time.Hour))

	// Keyed events: the same key always lands on the same partition, in order.
	var items []string
	for i := range 10 {
		items = append(items, fmt.Sprintf(`{"Body":"k%d","UserProperties":{"i":%d,"flag":true},"BrokerProperties":{"PartitionKey":"dev-a"}}`, i, i))
	}
	status, body := f.send(t, "ns-batch", "/events/messages", tok, "application/vnd.microsoft.servicebus.json", "["+strings.Join(items, ",")+"]")
	if status != http.StatusCreated {
		t.Fatalf("batch = %d %s", status, body)
	}
	pa := eventhubs.PartitionForKey("dev-a", 4)
	evs := readAll(t, f, "ns-batch", "events", fmt.Sprint(pa))
	if len(evs) != 10 {
		t.Fatalf("partition %d has %d events, want 10", pa, len(evs))
	}
	for i, e := range evs {
		if e.SequenceNumber != int64(i) || string(e.Body) != fmt.Sprintf("k%d", i) || e.Properties["i"] != float64(i) || e.Properties["flag"] != true {
			t.Errorf("event %d = seq %d body %q props %v", i, e.SequenceNumber, e.Body, e.Properties)
		}
	}

	// An explicit partition.
	status, body = f.send(t, "ns-batch", "/events/partitions/2/messages", tok, "application/vnd.microsoft.servicebus.json", `[{"Body":"p2-a"},{"Body":"cDItYg==","IsBodyBase64":true}]`)
	if status != http.StatusCreated {
		t.Fatalf("partition send = %d %s", status, body)
	}
	got := readAll(t, f, "ns-batch", "events", "2")
	tail := got[len(got)-2:]
	if string(tail[0].Body) != "p2-a" || string(tail[1].Body) != "p2-b" || tail[1].SequenceNumber != tail[0].SequenceNumber+1 {
		t.Errorf("partition 2 tail = %+v", tail)
	}
	if status, _ := f.send(t, "ns-batch", "/events/partitions/9/messages", tok, "", "x"); status != http.StatusBadRequest {
		t.Errorf("partition 9 of 4 = %d, want 400", status)
	}

	// A publisher is its events' partition key.
	status, body = f.send(t, "ns-batch", "/events/publishers/sensor-7/messages", tok, "text/plain", "from a publisher")
	if status != http.StatusCreated {
		t.Fatalf("publisher send = %d %s", status, body)
	}
	pp := eventhubs.PartitionForKey("sensor-7", 4)
	got = readAll(t, f, "ns-batch", "events", fmt.Sprint(pp))
	last := got[len(got)-1]
	if string(last.Body) != "from a publisher" || last.PartitionKey != "sensor-7" || last.Publisher != "sensor-7" {
		t.Errorf("publisher event = %+v", last)
	}

	// Reading from a sequence number continues there.
	from, err := f.handler.Read(context.Background(), "ns-batch", "events", "$Default", fmt.Sprint(pa), 7, 2)
	if err != nil || len(from) != 2 || from[0].SequenceNumber != 7 || from[1].SequenceNumber != 8 {
		t.Errorf("read from 7 = %+v, %v", from, err)
	}
	if _, err := f.handler.Read(context.Background(), "ns-batch", "events", "nosuchgroup", "0", 0, 1); err == nil {
		t.Error("read with an unknown consumer group succeeded")
	}
}

func TestSendRefusals(t *testing.T) {
	f := newFixture(t)
	key := f.namespace(t, "ns-refuse", "events", "Standard")
	f.call(t, "PUT", f.nsID("ns-refuse")+"/eventhubs/other"+v, `{}`, 200)
	good := sign("ns-refuse", "events", "RootManageSharedAccessKey", key, time.Now().Add(time.Hour))

	// Entity-level rules: Send works on its own event hub, Listen does not send.
	f.call(t, "PUT", f.nsID("ns-refuse")+"/eventhubs/events/authorizationRules/sender"+v, `{"properties":{"rights":["Send"]}}`, 200)
	f.call(t, "PUT", f.nsID("ns-refuse")+"/eventhubs/events/authorizationRules/listener"+v, `{"properties":{"rights":["Listen"]}}`, 200)
	sk := f.call(t, "POST", f.nsID("ns-refuse")+"/eventhubs/events/authorizationRules/sender/listKeys"+v, "", 200)
	if cs := sk["primaryConnectionString"].(string); !strings.HasSuffix(cs, ";EntityPath=events") || !strings.HasPrefix(cs, "Endpoint=sb://ns-refuse.servicebus."+suffix+"/;") {
		t.Errorf("entity connection string = %s", cs)
	}
	lk := f.call(t, "POST", f.nsID("ns-refuse")+"/eventhubs/events/authorizationRules/listener/listKeys"+v, "", 200)
	if status, body := f.send(t, "ns-refuse", "/events/messages", sign("ns-refuse", "events", "sender", sk["secondaryKey"].(string), time.Now().Add(time.Hour)), "", "x"); status != 201 {
		t.Errorf("entity Send rule (secondary key) = %d %s", status, body)
	}

	cases := []struct {
		name, path, auth, ctype, body string
		status                        int
		detail                        string
	}{
		{"no auth", "/events/messages", "", "", "x", 401, "MissingToken"},
		{"bad signature", "/events/messages", sign("ns-refuse", "events", "RootManageSharedAccessKey", "wrong-key-wrong-key-wrong-key-wrong", time.Now().Add(time.Hour)), "", "x", 401, "invalid signature"},
		{"expired", "/events/messages", sign("ns-refuse", "events", "RootManageSharedAccessKey", key, time.Now().Add(-time.Hour)), "", "x", 401, "ExpiredToken"},
		{"other entity", "/other/messages", sign("ns-refuse", "events", "RootManageSharedAccessKey", key, time.Now().Add(time.Hour)), "", "x", 401, "does not cover"},
		{"entity rule on another hub", "/other/messages", sign("ns-refuse", "other", "sender", sk["primaryKey"].(string), time.Now().Add(time.Hour)), "", "x", 401, "not an authorization rule"},
		{"listen only", "/events/messages", sign("ns-refuse", "events", "listener", lk["primaryKey"].(string), time.Now().Add(time.Hour)), "", "x", 401, "'Send' claim(s) are required"},
		{"unknown rule", "/events/messages", sign("ns-refuse", "events", "nobody", key, time.Now().Add(time.Hour)), "", "x", 401, "nobody"},
		{"missing event hub", "/nohub/messages", sign("ns-refuse", "", "RootManageSharedAccessKey", key, time.Now().Add(time.Hour)), "", "x", 404, "could not be found"},
		{"malformed batch", "/events/messages", good, "application/vnd.microsoft.servicebus.json", `[{"Body":"a"},`, 400, "batch is not valid"},
		{"batch of objects", "/events/messages", good, "application/vnd.microsoft.servicebus.json", `{"Body":"a"}`, 400, "batch is not valid"},
		{"oversized event", "/events/messages", good, "application/octet-stream", strings.Repeat("x", 1024*1024+1), 413, "exceeds the limit (1048576 bytes)"},
		{"oversized batch", "/events/messages", good, "application/vnd.microsoft.servicebus.json", `[{"Body":"` + strings.Repeat("x", 600*1024) + `"},{"Body":"` + strings.Repeat("y", 600*1024) + `"}]`, 413, "exceeds the limit"},
		{"bad broker properties", "/events/messages", good, "", "x", 400, "BrokerProperties"},
		{"wrong method path", "/events/nothing", good, "", "x", 404, "not an Event Hubs REST operation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var extra []string
			if c.name == "bad broker properties" {
				extra = []string{"BrokerProperties", "{not json"}
			}
			status, body := f.send(t, "ns-refuse", c.path, c.auth, c.ctype, c.body, extra...)
			if status != c.status || !strings.Contains(body, c.detail) || !strings.HasPrefix(body, "<Error><Code>") || !strings.Contains(body, "TrackingId:") {
				t.Errorf("= %d %s; want %d with %q", status, body, c.status, c.detail)
			}
		})
	}

	// A Basic namespace allows 256 KB.
	bkey := f.namespace(t, "ns-basic", "events", "Basic")
	if status, body := f.send(t, "ns-basic", "/events/messages", sign("ns-basic", "events", "RootManageSharedAccessKey", bkey, time.Now().Add(time.Hour)), "", strings.Repeat("x", 300*1024)); status != 413 || !strings.Contains(body, "262144") {
		t.Errorf("300 KB to Basic = %d %s", status, body)
	}

	// disableLocalAuth refuses every SAS, at once (the control plane invalidates the cache).
	f.call(t, "PATCH", f.nsID("ns-refuse")+v, `{"properties":{"disableLocalAuth":true}}`, 200)
	if status, body := f.send(t, "ns-refuse", "/events/messages", good, "", "x"); status != 401 || !strings.Contains(body, "disableLocalAuth") {
		t.Errorf("SAS with local auth disabled = %d %s", status, body)
	}
}

func TestSendBearer(t *testing.T) {
	f := newFixture(t)
	f.namespace(t, "ns-bearer", "events", "Standard")
	sp, _, err := f.dir.CreateServicePrincipal(context.Background(), "sender")
	if err != nil {
		t.Fatal(err)
	}
	ehTok, err := f.issuer.Issue(sp, "https://eventhubs.azure.net/", "1")
	if err != nil {
		t.Fatal(err)
	}
	stTok, _ := f.issuer.Issue(sp, "https://storage.azure.com/", "1")

	if status, body := f.send(t, "ns-bearer", "/events/messages", "Bearer "+stTok.AccessToken, "", "x"); status != 401 || !strings.Contains(body, "eventhubs.azure.net") {
		t.Errorf("storage token = %d %s", status, body)
	}
	status, body := f.send(t, "ns-bearer", "/events/messages", "Bearer "+ehTok.AccessToken, "", "x")
	want := "Unauthorized access. 'Send' claim(s) are required to perform this operation. Resource: 'sb://ns-bearer.servicebus." + suffix + "/events'."
	if status != 401 || !strings.Contains(body, want) {
		t.Errorf("token without a role = %d %s", status, body)
	}

	// Azure Event Hubs Data Sender on the namespace grants send on its event hubs.
	f.call(t, "PUT", f.nsID("ns-bearer")+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2022-04-01",
		`{"properties":{"roleDefinitionId":"/subscriptions/`+f.sub+`/providers/Microsoft.Authorization/roleDefinitions/2b629674-e913-4c01-ae53-ef4638d8f975","principalId":"`+sp.ObjectID+`","principalType":"ServicePrincipal"}}`, 201)
	if status, body := f.send(t, "ns-bearer", "/events/messages", "Bearer "+ehTok.AccessToken, "", "with a role"); status != 201 {
		t.Fatalf("token with Data Sender = %d %s", status, body)
	}

	// Network rules apply after authorization: deny everything but another address.
	f.call(t, "PUT", f.nsID("ns-bearer")+"/networkRuleSets/default"+v, `{"properties":{"defaultAction":"Deny","ipRules":[{"ipMask":"203.0.113.0/24","action":"Allow"}]}}`, 200)
	if status, body := f.send(t, "ns-bearer", "/events/messages", "Bearer "+ehTok.AccessToken, "", "x"); status != 403 || !strings.Contains(body, "127.0.0.1") {
		t.Errorf("denied address = %d %s", status, body)
	}
	f.call(t, "PUT", f.nsID("ns-bearer")+"/networkRuleSets/default"+v, `{"properties":{"defaultAction":"Deny","ipRules":[{"ipMask":"127.0.0.1"}]}}`, 200)
	if status, body := f.send(t, "ns-bearer", "/events/messages", "Bearer "+ehTok.AccessToken, "", "x"); status != 201 {
		t.Errorf("allowed address = %d %s", status, body)
	}
}

func TestServes(t *testing.T) {
	f := newFixture(t)
	f.namespace(t, "ns-serves", "events", "Standard")
	ctx := context.Background()
	if ok, err := f.handler.Serves(ctx, "NS-Serves"); !ok || err != nil {
		t.Errorf("Serves(ns-serves) = %v, %v", ok, err)
	}
	if ok, err := f.handler.Serves(ctx, "some-servicebus-ns"); ok || err != nil {
		t.Errorf("Serves(unknown) = %v, %v", ok, err)
	}
	if got := eventhubs.NamespaceFromHost("NS-Serves.servicebus."+suffix+":443", suffix); got != "ns-serves" {
		t.Errorf("NamespaceFromHost = %q", got)
	}
	// Deleting the namespace removes it from the data plane at once.
	f.call(t, "DELETE", f.nsID("ns-serves")+v, "", 200)
	if ok, _ := f.handler.Serves(ctx, "ns-serves"); ok {
		t.Error("a deleted namespace is still served")
	}
}
