package servicebus

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/identity/authz"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/store"
)

func TestARMDefaultsAndKeys(t *testing.T) {
	f := newFixture(t)
	f.namespace("sbns-arm", "")
	ns := f.armDo("GET", f.nsBase+"sbns-arm"+apiVersion, "", 200)
	props := ns["properties"].(map[string]any)
	if props["serviceBusEndpoint"] != "https://sbns-arm.servicebus."+suffix+":443/" || props["status"] != "Active" ||
		props["provisioningState"] != "Succeeded" || props["disableLocalAuth"] != false {
		t.Errorf("namespace properties = %v", props)
	}
	if _, leaked := ns["outpostCreate"]; leaked {
		t.Errorf("internal marker leaked: %v", ns)
	}
	// Name rules and global uniqueness.
	f.armDo("PUT", f.nsBase+"ab"+apiVersion, `{"location":"westus"}`, 400)
	f.armDo("PUT", f.nsBase+"bad-name-sb"+apiVersion, `{"location":"westus"}`, 400)
	f.armDo("PUT", "/subscriptions/"+f.sub+"/resourceGroups/rg/providers/Microsoft.ServiceBus/namespaces/SBNS-ARM"+apiVersion+"&x=1", `{"location":"westus"}`, 200)

	q := f.armDo("PUT", f.nsBase+"sbns-arm/queues/q1"+apiVersion, `{"properties":{}}`, 200)
	qp := q["properties"].(map[string]any)
	if qp["lockDuration"] != "PT1M" || qp["maxDeliveryCount"] != float64(10) || qp["requiresSession"] != false {
		t.Errorf("queue defaults = %v", qp)
	}
	f.armDo("PUT", f.nsBase+"sbns-arm/queues/q1"+apiVersion, `{"properties":{"lockDuration":"PT10M"}}`, 400)
	f.armDo("PUT", f.nsBase+"sbns-arm/topics/q1"+apiVersion, `{"properties":{}}`, 409)

	// Rules: hidden keys, listKeys with the connection string, regenerate.
	rule := f.armDo("GET", f.nsBase+"sbns-arm/authorizationRules/RootManageSharedAccessKey"+apiVersion, "", 200)
	if strings.Contains(mustJSON(rule), "primaryKey") {
		t.Errorf("GET shows keys: %v", rule)
	}
	keys := f.armDo("POST", f.nsBase+"sbns-arm/authorizationRules/RootManageSharedAccessKey/listKeys"+apiVersion, "", 200)
	want := "Endpoint=sb://sbns-arm.servicebus." + suffix + "/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + keys["primaryKey"].(string)
	if keys["primaryConnectionString"] != want {
		t.Errorf("connection string = %v, want %s", keys["primaryConnectionString"], want)
	}
	regen := f.armDo("POST", f.nsBase+"sbns-arm/authorizationRules/RootManageSharedAccessKey/regenerateKeys"+apiVersion, `{"keyType":"PrimaryKey"}`, 200)
	if regen["primaryKey"] == keys["primaryKey"] || regen["secondaryKey"] != keys["secondaryKey"] {
		t.Errorf("regenerate = %v (was %v)", regen, keys)
	}
	f.armDo("PUT", f.nsBase+"sbns-arm/authorizationRules/bad"+apiVersion, `{"properties":{"rights":["Manage"]}}`, 400)
	f.armDo("PUT", f.nsBase+"sbns-arm/queues/q1/authorizationRules/send"+apiVersion, `{"properties":{"rights":["Send"]}}`, 200)
	ek := f.armDo("POST", f.nsBase+"sbns-arm/queues/q1/authorizationRules/send/listKeys"+apiVersion, "", 200)
	if !strings.HasSuffix(ek["primaryConnectionString"].(string), ";EntityPath=q1") {
		t.Errorf("entity connection string = %v", ek["primaryConnectionString"])
	}

	// Topic, subscription with $Default, rule validation, network rules.
	f.armDo("PUT", f.nsBase+"sbns-arm/topics/t1"+apiVersion, `{"properties":{}}`, 200)
	f.armDo("PUT", f.nsBase+"sbns-arm/topics/t1/subscriptions/s1"+apiVersion, `{"properties":{}}`, 200)
	def := f.armDo("GET", f.nsBase+"sbns-arm/topics/t1/subscriptions/s1/rules/$Default"+apiVersion, "", 200)
	if def["properties"].(map[string]any)["sqlFilter"].(map[string]any)["sqlExpression"] != "1=1" {
		t.Errorf("$Default = %v", def)
	}
	f.armDo("PUT", f.nsBase+"sbns-arm/topics/t1/subscriptions/s1/rules/r1"+apiVersion, `{"properties":{"filterType":"SqlFilter","sqlFilter":{"sqlExpression":"color = "}}}`, 400)
	nrs := f.armDo("GET", f.nsBase+"sbns-arm/networkRuleSets/default"+apiVersion, "", 200)
	if nrs["properties"].(map[string]any)["defaultAction"] != "Allow" {
		t.Errorf("default network rule set = %v", nrs)
	}
	avail := f.armDo("POST", "/subscriptions/"+f.sub+"/providers/Microsoft.ServiceBus/CheckNameAvailability"+apiVersion, `{"name":"sbns-arm"}`, 200)
	if avail["nameAvailable"] != false {
		t.Errorf("checkNameAvailability = %v", avail)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestQueueSendReceiveAndDelete(t *testing.T) {
	f := newFixture(t)
	key := f.namespace("sbns-q", "")
	f.armDo("PUT", f.nsBase+"sbns-q/queues/orders"+apiVersion, `{"properties":{}}`, 200)
	auth := f.sas("sbns-q", "", "RootManageSharedAccessKey", key)

	f.expect("POST", "sbns-q", "/orders/messages", auth, "hello", map[string]string{
		"BrokerProperties": `{"Label":"M1","MessageId":"id-1","CorrelationId":"c-1"}`,
		"Priority":         `"High"`, "Count": "5", "Content-Type": "text/plain",
	}, 201)
	resp, body := f.expect("DELETE", "sbns-q", "/orders/messages/head?timeout=5", auth, "", nil, 200)
	bp := brokerProps(t, resp)
	if body != "hello" || bp["Label"] != "M1" || bp["MessageId"] != "id-1" || bp["DeliveryCount"] != float64(1) ||
		bp["SequenceNumber"] == float64(0) || bp["EnqueuedTimeUtc"] == "" || bp["State"] != "Active" {
		t.Errorf("received %q %v", body, bp)
	}
	if resp.Header.Get("Priority") != `"High"` || resp.Header.Get("Count") != "5" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("custom properties = %v", resp.Header)
	}
	start := time.Now()
	f.expect("DELETE", "sbns-q", "/orders/messages/head?timeout=1", auth, "", nil, 204)
	if time.Since(start) < 800*time.Millisecond {
		t.Errorf("empty receive returned after %v, want a ~1 s long poll", time.Since(start))
	}

	// Batch send.
	f.expect("POST", "sbns-q", "/orders/messages", auth,
		`[{"Body":"b1","BrokerProperties":{"Label":"x"},"UserProperties":{"n":1}},{"Body":"b2"}]`,
		map[string]string{"Content-Type": "application/vnd.microsoft.servicebus.json"}, 201)
	for _, want := range []string{"b1", "b2"} {
		if _, got := f.expect("DELETE", "sbns-q", "/orders/messages/head?timeout=5", auth, "", nil, 200); got != want {
			t.Errorf("batch message = %q, want %q", got, want)
		}
	}

	// A missing entity, and too large a message.
	f.expect("POST", "sbns-q", "/nope/messages", auth, "x", nil, 404)
	f.expect("POST", "sbns-q", "/orders/messages", auth, strings.Repeat("x", 300*1024), nil, 403)
}

func TestPeekLockCompleteAbandonRenew(t *testing.T) {
	f := newFixture(t)
	key := f.namespace("sbns-lock", "")
	f.armDo("PUT", f.nsBase+"sbns-lock/queues/work"+apiVersion, `{"properties":{"lockDuration":"PT5S"}}`, 200)
	auth := f.sas("sbns-lock", "work", "RootManageSharedAccessKey", key)
	f.expect("POST", "sbns-lock", "/work/messages", auth, "job", nil, 201)

	resp, body := f.expect("POST", "sbns-lock", "/work/messages/head?timeout=5", auth, "", nil, 201)
	bp := brokerProps(t, resp)
	loc := resp.Header.Get("Location")
	if body != "job" || bp["LockToken"] == nil || bp["LockedUntilUtc"] == nil ||
		!strings.HasPrefix(loc, "https://sbns-lock.servicebus."+suffix+"/work/messages/") || !strings.HasSuffix(loc, bp["LockToken"].(string)) {
		t.Fatalf("peek-lock = %q %v Location=%s", body, bp, loc)
	}
	lockPath := strings.TrimPrefix(loc, "https://sbns-lock.servicebus."+suffix)
	// Locked: nobody else gets it.
	f.expect("DELETE", "sbns-lock", "/work/messages/head?timeout=0", auth, "", nil, 204)
	// Renew, then abandon: it comes back with DeliveryCount 2.
	f.expect("POST", "sbns-lock", lockPath, auth, "", nil, 200)
	f.expect("PUT", "sbns-lock", lockPath, auth, "", nil, 200)
	f.expect("PUT", "sbns-lock", lockPath, auth, "", nil, 404) // the lock is gone
	resp, _ = f.expect("POST", "sbns-lock", "/work/messages/head?timeout=5", auth, "", nil, 201)
	if bp := brokerProps(t, resp); bp["DeliveryCount"] != float64(2) {
		t.Errorf("DeliveryCount after abandon = %v, want 2", bp["DeliveryCount"])
	}
	lockPath = strings.TrimPrefix(resp.Header.Get("Location"), "https://sbns-lock.servicebus."+suffix)
	f.expect("DELETE", "sbns-lock", lockPath, auth, "", nil, 200)
	f.expect("DELETE", "sbns-lock", lockPath, auth, "", nil, 404)
	f.expect("DELETE", "sbns-lock", "/work/messages/head?timeout=1", auth, "", nil, 204)
	f.expect("DELETE", "sbns-lock", "/work/messages/1/not-a-lock", auth, "", nil, 404)
}

func TestMaxDeliveryCountDeadLetters(t *testing.T) {
	f := newFixture(t)
	key := f.namespace("sbns-dlq", "")
	f.armDo("PUT", f.nsBase+"sbns-dlq/queues/q"+apiVersion, `{"properties":{"maxDeliveryCount":2}}`, 200)
	auth := f.sas("sbns-dlq", "", "RootManageSharedAccessKey", key)
	f.expect("POST", "sbns-dlq", "/q/messages", auth, "poison", map[string]string{"BrokerProperties": `{"MessageId":"p1"}`}, 201)
	for i := 0; i < 2; i++ {
		resp, _ := f.expect("POST", "sbns-dlq", "/q/messages/head?timeout=5", auth, "", nil, 201)
		f.expect("PUT", "sbns-dlq", strings.TrimPrefix(resp.Header.Get("Location"), "https://sbns-dlq.servicebus."+suffix), auth, "", nil, 200)
	}
	f.expect("DELETE", "sbns-dlq", "/q/messages/head?timeout=1", auth, "", nil, 204)
	resp, body := f.expect("DELETE", "sbns-dlq", "/q/$DeadLetterQueue/messages/head?timeout=5", auth, "", nil, 200)
	if body != "poison" || resp.Header.Get("DeadLetterReason") != `"MaxDeliveryCountExceeded"` || brokerProps(t, resp)["MessageId"] != "p1" {
		t.Errorf("dead-lettered = %q %v", body, resp.Header)
	}
	// Counts show through ARM.
	f.expect("POST", "sbns-dlq", "/q/messages", auth, "x", nil, 201)
	q := f.armDo("GET", f.nsBase+"sbns-dlq/queues/q"+apiVersion, "", 200)
	if cd := q["properties"].(map[string]any)["countDetails"].(map[string]any); cd["activeMessageCount"] != float64(1) {
		t.Errorf("countDetails = %v", cd)
	}
}

func TestTTLExpiry(t *testing.T) {
	f := newFixture(t)
	key := f.namespace("sbns-ttl", "")
	f.armDo("PUT", f.nsBase+"sbns-ttl/queues/drop"+apiVersion, `{"properties":{}}`, 200)
	f.armDo("PUT", f.nsBase+"sbns-ttl/queues/keep"+apiVersion, `{"properties":{"deadLetteringOnMessageExpiration":true,"defaultMessageTimeToLive":"PT1S"}}`, 200)
	auth := f.sas("sbns-ttl", "", "RootManageSharedAccessKey", key)
	f.expect("POST", "sbns-ttl", "/drop/messages", auth, "short", map[string]string{"BrokerProperties": `{"TimeToLive":0.5}`}, 201)
	f.expect("POST", "sbns-ttl", "/keep/messages", auth, "entity-ttl", nil, 201)
	time.Sleep(1100 * time.Millisecond)
	f.expect("DELETE", "sbns-ttl", "/drop/messages/head?timeout=0", auth, "", nil, 204)
	f.expect("DELETE", "sbns-ttl", "/drop/$DeadLetterQueue/messages/head?timeout=0", auth, "", nil, 204)
	f.expect("DELETE", "sbns-ttl", "/keep/messages/head?timeout=0", auth, "", nil, 204)
	resp, body := f.expect("DELETE", "sbns-ttl", "/keep/$DeadLetterQueue/messages/head?timeout=5", auth, "", nil, 200)
	if body != "entity-ttl" || resp.Header.Get("DeadLetterReason") != `"TTLExpiredException"` {
		t.Errorf("expired message in DLQ = %q %v", body, resp.Header)
	}
}

func TestTopicFilters(t *testing.T) {
	f := newFixture(t)
	key := f.namespace("sbns-topic", "")
	base := f.nsBase + "sbns-topic/topics/events"
	f.armDo("PUT", base+apiVersion, `{"properties":{}}`, 200)
	for _, s := range []string{"all", "red", "corr"} {
		f.armDo("PUT", base+"/subscriptions/"+s+apiVersion, `{"properties":{}}`, 200)
	}
	f.armDo("DELETE", base+"/subscriptions/red/rules/$Default"+apiVersion, "", 200)
	f.armDo("PUT", base+"/subscriptions/red/rules/red"+apiVersion,
		`{"properties":{"filterType":"SqlFilter","sqlFilter":{"sqlExpression":"color = 'red' AND size > 5 AND sys.Label LIKE 'ev%'"}}}`, 200)
	f.armDo("DELETE", base+"/subscriptions/corr/rules/$Default"+apiVersion, "", 200)
	f.armDo("PUT", base+"/subscriptions/corr/rules/c"+apiVersion,
		`{"properties":{"filterType":"CorrelationFilter","correlationFilter":{"correlationId":"order-7","properties":{"region":"eu"}}}}`, 200)
	auth := f.sas("sbns-topic", "events", "RootManageSharedAccessKey", key)
	send := func(body, bp string, extra map[string]string) {
		h := map[string]string{"BrokerProperties": bp}
		for k, v := range extra {
			h[k] = v
		}
		f.expect("POST", "sbns-topic", "/events/messages", auth, body, h, 201)
	}
	send("m-red", `{"Label":"event"}`, map[string]string{"color": `"red"`, "size": "10"})
	send("m-small", `{"Label":"event"}`, map[string]string{"color": `"red"`, "size": "1"})
	send("m-corr", `{"CorrelationId":"order-7"}`, map[string]string{"region": `"eu"`})
	send("m-corr-us", `{"CorrelationId":"order-7"}`, map[string]string{"region": `"us"`})
	drain := func(sub string) []string {
		var got []string
		for {
			resp, body := f.call("DELETE", "sbns-topic", "/events/subscriptions/"+sub+"/messages/head?timeout=0", auth, "", nil)
			if resp.StatusCode == http.StatusNoContent {
				return got
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("receive from %s = %d %s", sub, resp.StatusCode, body)
			}
			got = append(got, body)
		}
	}
	for sub, want := range map[string]string{"all": "m-red,m-small,m-corr,m-corr-us", "red": "m-red", "corr": "m-corr"} {
		if got := strings.Join(drain(sub), ","); got != want {
			t.Errorf("subscription %s got %s, want %s", sub, got, want)
		}
	}
	f.expect("DELETE", "sbns-topic", "/events/messages/head", auth, "", nil, 400)
}

func TestSASRefusals(t *testing.T) {
	f := newFixture(t)
	key := f.namespace("sbns-auth", "")
	f.armDo("PUT", f.nsBase+"sbns-auth/queues/q"+apiVersion, `{"properties":{}}`, 200)
	f.armDo("PUT", f.nsBase+"sbns-auth/authorizationRules/listen"+apiVersion, `{"properties":{"rights":["Listen"]}}`, 200)
	lk := f.armDo("POST", f.nsBase+"sbns-auth/authorizationRules/listen/listKeys"+apiVersion, "", 200)

	listen := f.sas("sbns-auth", "q", "listen", lk["primaryKey"].(string))
	_, body := f.expect("POST", "sbns-auth", "/q/messages", listen, "x", nil, 401)
	if !strings.Contains(body, "<Code>401</Code>") || !strings.Contains(body, "'Send' claim(s) are required") ||
		!strings.Contains(body, "sb://sbns-auth.servicebus."+suffix+"/q") {
		t.Errorf("401 body = %s", body)
	}
	f.expect("DELETE", "sbns-auth", "/q/messages/head?timeout=0", listen, "", nil, 204)
	f.expect("POST", "sbns-auth", "/q/messages", f.sas("sbns-auth", "q", "RootManageSharedAccessKey", "wrong-key"), "x", nil, 401)
	f.expect("POST", "sbns-auth", "/q/messages", f.sas("sbns-auth", "other", "RootManageSharedAccessKey", key), "x", nil, 401)
	f.expect("POST", "sbns-auth", "/q/messages", "", "x", nil, 401)
	f.expect("POST", "sbns-auth", "/q/messages", "SharedAccessSignature garbage", "x", nil, 401)

	// disableLocalAuth turns every SAS away.
	f.armDo("PUT", f.nsBase+"sbns-auth"+apiVersion, `{"location":"westus","properties":{"disableLocalAuth":true}}`, 200)
	_, body = f.expect("POST", "sbns-auth", "/q/messages", f.sas("sbns-auth", "", "RootManageSharedAccessKey", key), "x", nil, 401)
	if !strings.Contains(body, "LocalAuthDisabled") {
		t.Errorf("disableLocalAuth body = %s", body)
	}

	// Network rules apply to key-based requests too.
	f.armDo("PUT", f.nsBase+"sbns-auth"+apiVersion, `{"location":"westus","properties":{"disableLocalAuth":false}}`, 200)
	f.armDo("PUT", f.nsBase+"sbns-auth/networkRuleSets/default"+apiVersion, `{"properties":{"defaultAction":"Deny","ipRules":[{"ipMask":"10.0.0.0/8"}]}}`, 200)
	f.expect("POST", "sbns-auth", "/q/messages", f.sas("sbns-auth", "", "RootManageSharedAccessKey", key), "x", nil, 403)
}

func TestBearer(t *testing.T) {
	f := newFixture(t)
	f.namespace("sbns-aad", "")
	f.armDo("PUT", f.nsBase+"sbns-aad/queues/q"+apiVersion, `{"properties":{}}`, 200)
	ctx := context.Background()
	sp, _, err := f.dir.CreateServicePrincipal(ctx, "sender")
	if err != nil {
		t.Fatal(err)
	}
	tok := func(resource string) string {
		tk, err := f.issuer.Issue(sp, resource, "1")
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tk.AccessToken
	}
	good := tok("https://servicebus.azure.net/")
	_, body := f.expect("POST", "sbns-aad", "/q/messages", good, "x", nil, 401)
	if !strings.Contains(body, "'Send' claim(s) are required") {
		t.Errorf("no role: %s", body)
	}
	f.expect("POST", "sbns-aad", "/q/messages", tok("https://storage.azure.com/"), "x", nil, 401)
	// Azure Service Bus Data Sender on the queue.
	scope := f.nsBase + "sbns-aad/queues/q"
	id := scope + "/providers/Microsoft.Authorization/roleAssignments/11111111-1111-1111-1111-111111111111"
	body = `{"properties":{"roleDefinitionId":"` + scope + `/providers/Microsoft.Authorization/roleDefinitions/` + authz.ServiceBusDataSenderRoleID +
		`","principalId":"` + sp.ObjectID + `","principalType":"ServicePrincipal","scope":"` + scope + `"}}`
	if _, _, err := f.st.Resources().Put(ctx, id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: rbac.AssignmentType, Name: "11111111-1111-1111-1111-111111111111", ParentID: scope, Body: []byte(body)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.rbac.ReloadNow(ctx); err != nil {
		t.Fatal(err)
	}
	f.expect("POST", "sbns-aad", "/q/messages", good, "x", nil, 201)
	f.expect("DELETE", "sbns-aad", "/q/messages/head?timeout=0", good, "", nil, 401) // sender can't receive
}
