package portal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/sas"
)

// TestPortalPagesRender: every blade of the hub and the identity answers
// 200 for the operator.
func TestPortalPagesRender(t *testing.T) {
	f := newFixture(t)
	op := f.s.App.Operator()
	b := newBrowser(t, f.s)
	b.signIn(op.ClientID, op.ClientSecret)
	for _, p := range []string{
		"/portal/resource?id=" + url.QueryEscape(f.hubID),
		"/portal/identity?id=" + url.QueryEscape(f.hubID),
		"/portal/identity?id=" + url.QueryEscape(f.hubID) + "&tab=user",
		"/portal/iam?id=" + url.QueryEscape(f.hubID),
		"/portal/iam?id=" + url.QueryEscape(f.hubID) + "&add=1",
		"/portal/routing?id=" + url.QueryEscape(f.hubID),
		"/portal/fileupload?id=" + url.QueryEscape(f.hubID),
		"/portal/resource?id=" + url.QueryEscape(f.uai),
		"/portal/iam?id=" + url.QueryEscape(f.uai),
	} {
		a := b.get(p)
		if a.status != http.StatusOK {
			t.Errorf("GET %s: %d\n%s", p, a.status, a.body)
		}
	}
	// The links the pages print lead to the pages (ids escaped once).
	home := b.get("/portal/")
	m := regexp.MustCompile(`href="(/portal/resource\?id=[^"]+)">` + f.hubName + `<`).FindStringSubmatch(home.body)
	if m == nil {
		t.Fatalf("home has no link to the hub:\n%s", home.body)
	}
	overview := b.get(html.UnescapeString(m[1]))
	if overview.status != http.StatusOK || !strings.Contains(overview.body, f.hubID) {
		t.Fatalf("the hub's link %s: %d\n%s", m[1], overview.status, overview.body)
	}
	for _, blade := range []string{"identity", "iam", "routing", "fileupload"} {
		m := regexp.MustCompile(`href="(/portal/` + blade + `\?id=[^"]+)"`).FindStringSubmatch(overview.body)
		if m == nil {
			t.Errorf("overview has no link to %s", blade)
			continue
		}
		if a := b.get(html.UnescapeString(m[1])); a.status != http.StatusOK {
			t.Errorf("blade link %s: %d\n%s", m[1], a.status, a.body)
		}
	}
	if strings.Contains(home.body, "Microsoft.Authorization/roleAssignments") {
		t.Errorf("home lists role assignments as resources")
	}
}

func TestPortalDevices(t *testing.T) {
	f := newFixture(t)
	op := f.s.App.Operator()
	b := newBrowser(t, f.s)
	b.signIn(op.ClientID, op.ClientSecret)
	csrf := b.csrf()
	devices := "/portal/devices?id=" + url.QueryEscape(f.hubID)

	// A device id with a quote and parentheses (both allowed) is created and
	// its connection string shown.
	const id = "it's(1)"
	a := b.post(devices, url.Values{"csrf": {csrf}, "deviceId": {id}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("create device: %d\n%s", a.status, a.body)
	}
	detail := b.get(a.location)
	host, tok := f.ownerSAS(t)
	req, _ := http.NewRequest("GET", f.s.Endpoint+"/devices/"+url.PathEscape(id)+"?api-version=2021-04-12", nil)
	req.Host = host
	req.Header.Set("Authorization", tok)
	resp, err := f.s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var dev struct {
		Authentication struct {
			SymmetricKey struct{ PrimaryKey string }
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&dev)
	resp.Body.Close()
	if resp.StatusCode != 200 || dev.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("device through the API: %s %+v", resp.Status, dev)
	}
	want := "HostName=" + host + ";DeviceId=" + id + ";SharedAccessKey=" + dev.Authentication.SymmetricKey.PrimaryKey
	m := regexp.MustCompile(`id="connection-string" readonly value="([^"]*)"`).FindStringSubmatch(detail.body)
	if detail.status != http.StatusOK || m == nil || html.UnescapeString(m[1]) != want {
		t.Fatalf("device page lacks the connection string %s:\n%s", want, detail.body)
	}
	list := b.get(devices)
	if !strings.Contains(list.body, ">it&#39;s(1)</a>") {
		t.Errorf("device list does not show the id as text:\n%s", list.body)
	}

	// A device id of <script>: the hub refuses it, and the refusal shows it
	// as text.
	a = b.post(devices, url.Values{"csrf": {csrf}, "deviceId": {"<script>alert(1)</script>"}})
	if a.status != http.StatusBadRequest || strings.Contains(a.body, "<script>alert(1)") || !strings.Contains(a.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("device id <script>: %d\n%s", a.status, a.body)
	}

	// Jobs: the page renders; a start without a container is refused.
	jobs := "/portal/jobs?id=" + url.QueryEscape(f.hubID)
	if a := b.get(jobs); a.status != http.StatusOK {
		t.Fatalf("jobs page: %d\n%s", a.status, a.body)
	}
	if a := b.post(jobs, url.Values{"csrf": {csrf}, "type": {"export"}}); a.status != http.StatusBadRequest || !strings.Contains(a.body, "NoOutputContainer") {
		t.Errorf("export without a container: %d\n%s", a.status, a.body)
	}

	// A Reader may not read the hub's keys, so the device pages show ARM's
	// refusal of listkeys.
	p, secret, err := f.s.App.Directory().CreateServicePrincipal(context.Background(), "portal-devices-reader")
	if err != nil {
		t.Fatal(err)
	}
	sub := f.s.App.Installation().SubscriptionID
	f.op.must("PUT", "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleAssignments/6f3c2a1e-1b7d-4b8e-9c0a-2d4e6f8a0b1c?api-version=2022-04-01",
		`{"properties":{"roleDefinitionId":"/subscriptions/`+sub+`/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7","principalId":"`+p.ObjectID+`"}}`)
	reader := newBrowser(t, f.s)
	reader.signIn(p.AppID, secret)
	for _, pg := range []string{devices, jobs} {
		if a := reader.get(pg); a.status != http.StatusForbidden || !strings.Contains(a.body, "AuthorizationFailed") || !strings.Contains(a.body, "listkeys") {
			t.Errorf("reader GET %s: %d\n%s", pg, a.status, a.body)
		}
	}
	if a := reader.post(devices, url.Values{"csrf": {reader.csrf()}, "deviceId": {"x"}}); a.status != http.StatusForbidden || !strings.Contains(a.body, "AuthorizationFailed") {
		t.Errorf("reader creating a device: %d\n%s", a.status, a.body)
	}
}

// TestPortalIdentitiesAndDeployments: the identities list and a resource
// group's deployments with the state of each resource operation.
func TestPortalIdentitiesAndDeployments(t *testing.T) {
	f := newFixture(t)
	sub := f.s.App.Installation().SubscriptionID
	f.op.must("PUT", f.hubID+"?api-version=2023-06-30", `{"location":"westus","sku":{"name":"S1","capacity":1},"identity":{"type":"SystemAssigned"}}`)
	f.op.waitHub(f.hubID)
	group := "/subscriptions/" + sub + "/resourceGroups/" + f.group
	dep := group + "/providers/Microsoft.Resources/deployments/portal-dep"
	f.op.must("PUT", dep+"?api-version=2021-04-01", `{"properties":{"mode":"Incremental","template":{
	  "$schema":"https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#","contentVersion":"1.0.0.0",
	  "resources":[{"type":"Microsoft.ManagedIdentity/userAssignedIdentities","apiVersion":"2018-11-30","name":"dep-uai","location":"westus"}]}}}`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		doc := f.op.must("GET", dep+"?api-version=2021-04-01", "")
		state := doc["properties"].(map[string]any)["provisioningState"]
		if state == "Succeeded" {
			break
		}
		if state == "Failed" || time.Now().After(deadline) {
			t.Fatalf("deployment: %v", doc)
		}
		time.Sleep(100 * time.Millisecond)
	}
	op := f.s.App.Operator()
	b := newBrowser(t, f.s)
	b.signIn(op.ClientID, op.ClientSecret)

	ids := b.get("/portal/identities")
	hubPrincipal := f.op.must("GET", f.hubID+"?api-version=2023-06-30", "")["identity"].(map[string]any)["principalId"].(string)
	for _, want := range []string{"portal-uai", "dep-uai", userPrincipal(t, f), f.hubName, hubPrincipal} {
		if !strings.Contains(ids.body, want) {
			t.Errorf("identities page lacks %s:\n%s", want, ids.body)
		}
	}
	home := b.get("/portal/")
	if !strings.Contains(home.body, ">"+f.group+"</a>") {
		t.Errorf("home does not list the resource group")
	}
	a := b.get("/portal/deployments?id=" + url.QueryEscape(group) + "&deployment=portal-dep")
	if a.status != http.StatusOK || !regexp.MustCompile(`(?s)dep-uai</td><td>Microsoft.ManagedIdentity/userAssignedIdentities</td><td>Succeeded`).MatchString(a.body) ||
		!strings.Contains(a.body, "portal-dep") {
		t.Errorf("deployments page: %d\n%s", a.status, a.body)
	}
}

// TestPortalTelemetry: the telemetry view's stream relays the hub's device
// messages to the signed-in browser, and a Reader (no listkeys) is refused.
func TestPortalTelemetry(t *testing.T) {
	f := newFixture(t)
	op := f.s.App.Operator()
	b := newBrowser(t, f.s)
	b.signIn(op.ClientID, op.ClientSecret)
	host, owner := f.ownerSAS(t)
	put, _ := http.NewRequest("PUT", f.s.Endpoint+"/devices/tele-dev?api-version=2021-04-12", strings.NewReader(`{"deviceId":"tele-dev"}`))
	put.Host = host
	put.Header.Set("Authorization", owner)
	put.Header.Set("Content-Type", "application/json")
	resp, err := f.s.HTTPClient().Do(put)
	if err != nil {
		t.Fatal(err)
	}
	var dev struct {
		Authentication struct{ SymmetricKey struct{ PrimaryKey string } }
	}
	_ = json.NewDecoder(resp.Body).Decode(&dev)
	resp.Body.Close()
	tok, err := sas.Sign(host+"/devices/tele-dev", dev.Authentication.SymmetricKey.PrimaryKey, "", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	send, _ := http.NewRequest("POST", f.s.Endpoint+"/devices/tele-dev/messages/events?api-version=2021-04-12", strings.NewReader(`{"t":21.5}`))
	send.Host = host
	send.Header.Set("Authorization", tok)
	send.Header.Set("iothub-app-level", "<b>hot</b>")
	send.Header.Set("iothub-contenttype", "application/json")
	if resp, err := f.s.HTTPClient().Do(send); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("send: %v %v", resp, err)
	}

	page := b.get("/portal/telemetry?id=" + url.QueryEscape(f.hubID))
	if page.status != http.StatusOK || !strings.Contains(page.body, `data-stream="/portal/telemetry?id=`) {
		t.Fatalf("telemetry page: %d\n%s", page.status, page.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.base+"/portal/telemetry?id="+url.QueryEscape(f.hubID)+"&stream=1&fromStart=true", nil)
	resp, err = b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("stream: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var line struct {
		Event struct {
			Origin     string
			Payload    map[string]any
			Properties struct{ Application map[string]string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&line); err != nil {
		t.Fatalf("first streamed message: %v", err)
	}
	if line.Event.Origin != "tele-dev" || line.Event.Payload["t"] != 21.5 || line.Event.Properties.Application["level"] != "<b>hot</b>" {
		t.Errorf("streamed message: %+v", line)
	}
	cancel()

	p, secret, err := f.s.App.Directory().CreateServicePrincipal(context.Background(), "portal-tele-reader")
	if err != nil {
		t.Fatal(err)
	}
	sub := f.s.App.Installation().SubscriptionID
	f.op.must("PUT", "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleAssignments/7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d?api-version=2022-04-01",
		`{"properties":{"roleDefinitionId":"/subscriptions/`+sub+`/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7","principalId":"`+p.ObjectID+`"}}`)
	reader := newBrowser(t, f.s)
	reader.signIn(p.AppID, secret)
	if a := reader.get("/portal/telemetry?id=" + url.QueryEscape(f.hubID) + "&stream=1"); a.status != http.StatusForbidden || !strings.Contains(a.body, "AuthorizationFailed") {
		t.Errorf("reader stream: %d %s", a.status, a.body)
	}
}

// TestPortalRoutingEndpointKinds: storage (key-based) and Service Bus queue
// (system-assigned) endpoints through the Add endpoint form, Change
// authentication type, storage networking, and a Reader's refusals on the
// routing, file upload and networking pages.
func TestPortalRoutingEndpointKinds(t *testing.T) {
	f := newFixture(t)
	sub := f.s.App.Installation().SubscriptionID
	rg := "/subscriptions/" + sub + "/resourceGroups/" + f.group
	acct := rg + "/providers/Microsoft.Storage/storageAccounts/portalacct" + fmt.Sprint(rand.IntN(1e6))
	f.op.must("PUT", acct+"?api-version=2023-05-01", `{"location":"westus","kind":"StorageV2","sku":{"name":"Standard_LRS"}}`)
	f.op.waitProvisioned(acct, "2023-05-01")
	f.op.must("PUT", acct+"/blobServices/default/containers/routed?api-version=2023-05-01", `{"properties":{}}`)
	ns := fmt.Sprintf("portalsb%d", rand.IntN(1e6))
	nsID := rg + "/providers/Microsoft.ServiceBus/namespaces/" + ns
	f.op.must("PUT", nsID+"?api-version=2021-11-01", `{"location":"westus","sku":{"name":"Standard","tier":"Standard"}}`)
	f.op.waitProvisioned(nsID, "2021-11-01")
	f.op.must("PUT", nsID+"/queues/orders?api-version=2021-11-01", `{"properties":{}}`)
	f.op.must("PUT", f.hubID+"?api-version=2023-06-30", `{"location":"westus","sku":{"name":"S1","capacity":1},"identity":{"type":"SystemAssigned"}}`)
	f.op.waitHub(f.hubID)

	op := f.s.App.Operator()
	b := newBrowser(t, f.s)
	b.signIn(op.ClientID, op.ClientSecret)
	csrf := b.csrf()
	routing := "/portal/routing?id=" + url.QueryEscape(f.hubID)
	acctName := acct[strings.LastIndex(acct, "/")+1:]
	for _, form := range []url.Values{
		{"endpointType": {"storageContainers"}, "endpointName": {"cold"}, "namespace": {acctName}, "instance": {"routed"}, "encoding": {"JSON"}, "authenticationType": {"keyBased"}},
		{"endpointType": {"serviceBusQueues"}, "endpointName": {"orders"}, "namespace": {ns}, "instance": {"orders"}, "authenticationType": {"systemAssigned"}},
	} {
		form.Set("csrf", csrf)
		form.Set("action", "addEndpoint")
		if a := b.post(routing, form); a.status != http.StatusSeeOther {
			t.Fatalf("add endpoint %v: %d\n%s", form, a.status, a.body)
		}
	}
	doc := f.op.must("GET", f.hubID+"?api-version=2023-06-30", "")
	eps := doc["properties"].(map[string]any)["routing"].(map[string]any)["endpoints"].(map[string]any)
	cold := eps["storageContainers"].([]any)[0].(map[string]any)
	if cold["name"] != "cold" || cold["containerName"] != "routed" || cold["encoding"] != "JSON" || cold["authenticationType"] != "keyBased" ||
		!strings.Contains(fmt.Sprint(cold["connectionString"]), "AccountName="+acctName) {
		t.Errorf("storage endpoint: %v", cold)
	}
	orders := eps["serviceBusQueues"].([]any)[0].(map[string]any)
	if orders["authenticationType"] != "identityBased" || orders["entityPath"] != "orders" || !strings.HasPrefix(fmt.Sprint(orders["endpointUri"]), "sb://"+ns+".servicebus.") {
		t.Errorf("service bus endpoint: %v", orders)
	}
	// Change authentication type: the queue to key-based, the container to
	// system-assigned.
	a := b.post(routing, url.Values{"csrf": {csrf}, "action": {"changeAuth"}, "endpoint": {"serviceBusQueues/orders", "storageContainers/cold"}, "authenticationType": {"keyBased"}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("change authentication type: %d\n%s", a.status, a.body)
	}
	doc = f.op.must("GET", f.hubID+"?api-version=2023-06-30", "")
	eps = doc["properties"].(map[string]any)["routing"].(map[string]any)["endpoints"].(map[string]any)
	orders = eps["serviceBusQueues"].([]any)[0].(map[string]any)
	if orders["authenticationType"] != "keyBased" || !strings.Contains(fmt.Sprint(orders["connectionString"]), "EntityPath=orders") || orders["endpointUri"] != nil {
		t.Errorf("queue after change to key-based: %v", orders)
	}
	page := b.get(routing)
	if !strings.Contains(page.body, acctName+"/routed") || !strings.Contains(page.body, ns+"/orders") {
		t.Errorf("routing page does not show the targets:\n%s", page.body)
	}
	// A condition that does not compile is refused with the hub's message.
	a = b.post(routing, url.Values{"csrf": {csrf}, "action": {"addRoute"}, "routeName": {"bad"}, "source": {"DeviceMessages"}, "routeEndpoint": {"orders"}, "condition": {"temperature >"}, "enabled": {"true"}})
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "error-message") {
		t.Errorf("route with a broken condition: %d\n%s", a.status, a.body)
	}

	// Storage networking through the form.
	netPage := "/portal/networking?id=" + url.QueryEscape(acct)
	a = b.post(netPage, url.Values{"csrf": {csrf}, "access": {"selected"}, "ipRules": {"203.0.113.0/24\n198.51.100.7"}, "trusted": {"on"}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("storage networking: %d\n%s", a.status, a.body)
	}
	acls := f.op.must("GET", acct+"?api-version=2023-05-01", "")["properties"].(map[string]any)["networkAcls"].(map[string]any)
	if acls["defaultAction"] != "Deny" || acls["bypass"] != "AzureServices" || len(acls["ipRules"].([]any)) != 2 {
		t.Errorf("storage network rules: %v", acls)
	}
	if page := b.get(netPage); !strings.Contains(page.body, "198.51.100.7") {
		t.Errorf("networking page does not show the IP rules:\n%s", page.body)
	}

	// A Reader sees each page; each save is refused with AuthorizationFailed.
	p, secret, err := f.s.App.Directory().CreateServicePrincipal(context.Background(), "portal-routing-reader")
	if err != nil {
		t.Fatal(err)
	}
	f.op.must("PUT", "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleAssignments/3c2b1a0f-9e8d-4c7b-a6f5-e4d3c2b1a090?api-version=2022-04-01",
		`{"properties":{"roleDefinitionId":"/subscriptions/`+sub+`/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7","principalId":"`+p.ObjectID+`"}}`)
	reader := newBrowser(t, f.s)
	reader.signIn(p.AppID, secret)
	rc := reader.csrf()
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{routing, url.Values{"action": {"addRoute"}, "routeName": {"r"}, "source": {"DeviceMessages"}, "routeEndpoint": {"events"}, "condition": {"true"}}},
		{"/portal/fileupload?id=" + url.QueryEscape(f.hubID), url.Values{"account": {acctName}, "container": {"routed"}, "sasTtlHours": {"1"}, "ttlHours": {"1"}, "maxDeliveryCount": {"10"}, "authenticationType": {"systemAssigned"}}},
		{netPage, url.Values{"access": {"all"}}},
	} {
		if a := reader.get(c.path); a.status != http.StatusOK {
			t.Errorf("reader GET %s: %d\n%s", c.path, a.status, a.body)
		}
		c.form.Set("csrf", rc)
		if a := reader.post(c.path, c.form); a.status != http.StatusForbidden || !strings.Contains(a.body, "AuthorizationFailed") {
			t.Errorf("reader POST %s: %d, want 403 AuthorizationFailed\n%s", c.path, a.status, a.body)
		}
	}
}

// TestPortalDevicePaging: the device list pages through the registry query
// (100 a page, the continuation in the next page's link) and Find opens a
// device by id.
func TestPortalDevicePaging(t *testing.T) {
	f := newFixture(t)
	host, owner := f.ownerSAS(t)
	for i := 0; i < 130; i++ {
		id := fmt.Sprintf("pg-%03d", i)
		req, _ := http.NewRequest("PUT", f.s.Endpoint+"/devices/"+id+"?api-version=2021-04-12", strings.NewReader(`{"deviceId":"`+id+`"}`))
		req.Host = host
		req.Header.Set("Authorization", owner)
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("create %s: %s", id, resp.Status)
		}
	}
	op := f.s.App.Operator()
	b := newBrowser(t, f.s)
	b.signIn(op.ClientID, op.ClientSecret)
	rows := regexp.MustCompile(`&amp;device=(pg-\d{3})">`)
	seen := map[string]bool{}
	page := b.get("/portal/devices?id=" + url.QueryEscape(f.hubID))
	for n := 0; ; n++ {
		if page.status != http.StatusOK {
			t.Fatalf("device list page %d: %d\n%s", n, page.status, page.body)
		}
		ids := rows.FindAllStringSubmatch(page.body, -1)
		if len(ids) > 100 {
			t.Fatalf("page %d shows %d devices, want at most 100", n, len(ids))
		}
		for _, m := range ids {
			seen[m[1]] = true
		}
		next := regexp.MustCompile(`href="([^"]+)">Next page of devices`).FindStringSubmatch(page.body)
		if next == nil {
			break
		}
		if n > 3 {
			t.Fatalf("more pages than 130 devices need")
		}
		page = b.get(html.UnescapeString(next[1]))
	}
	if len(seen) != 130 {
		t.Errorf("paged through %d distinct devices, want 130", len(seen))
	}
	if !strings.Contains(b.get("/portal/devices?id="+url.QueryEscape(f.hubID)).body, "(130 in the registry)") {
		t.Errorf("the list does not show the registry's total")
	}
	found := b.get("/portal/devices?id=" + url.QueryEscape(f.hubID) + "&device=pg-077")
	if found.status != http.StatusOK || !strings.Contains(found.body, `<dd id="device-id">pg-077</dd>`) {
		t.Errorf("find pg-077: %d\n%s", found.status, found.body)
	}
	if missing := b.get("/portal/devices?id=" + url.QueryEscape(f.hubID) + "&device=nope"); missing.status != http.StatusNotFound || !strings.Contains(missing.body, "DeviceNotFound") {
		t.Errorf("find an unknown device: %d\n%s", missing.status, missing.body)
	}
}
