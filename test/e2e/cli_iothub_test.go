package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// hubCLI runs the built `outpost` binary against one server, with
// only the variables `outpost env` prints (no inherited AZURE_*).
type hubCLI struct {
	t   *testing.T
	bin string
	env []string
}

func newHubCLI(t *testing.T, s *testserver.Server) *hubCLI {
	t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "OUTPOST_DATA_DIR=" + t.TempDir()}
	for k, v := range s.Env() {
		env = append(env, k+"="+v)
	}
	return &hubCLI{t: t, bin: testserver.BuildBinary(t), env: env}
}

type hubCLIResult struct {
	Cmd            string
	Stdout, Stderr string
	Code           int
}

func (r hubCLIResult) String() string {
	return r.Cmd + "\n--- stdout:\n" + r.Stdout + "\n--- stderr:\n" + r.Stderr
}

func (o *hubCLI) run(args ...string) hubCLIResult {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.bin, args...)
	cmd.Env = o.env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := hubCLIResult{Cmd: "outpost " + strings.Join(args, " "), Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.Code = exit.ExitCode()
	case err != nil:
		o.t.Fatalf("%s: %v", res.Cmd, err)
	}
	o.t.Logf("%s (exit %d)", res.Cmd, res.Code)
	return res
}

func (o *hubCLI) ok(args ...string) hubCLIResult {
	o.t.Helper()
	res := o.run(args...)
	if res.Code != 0 {
		o.t.Fatalf("exit %d\n%s", res.Code, res)
	}
	return res
}

func (o *hubCLI) decode(v any, args ...string) {
	o.t.Helper()
	res := o.ok(args...)
	if err := json.Unmarshal([]byte(res.Stdout), v); err != nil {
		o.t.Fatalf("decode: %v\n%s", err, res)
	}
}

// fails runs a command that must fail with the exit code and a one-line
// "ERROR: …" containing want.
func (o *hubCLI) fails(code int, want string, args ...string) {
	o.t.Helper()
	res := o.run(args...)
	line := strings.TrimSpace(res.Stderr)
	if res.Code != code || !strings.HasPrefix(line, "ERROR: ") || strings.Contains(line, "\n") || !strings.Contains(line, want) {
		o.t.Errorf("want exit %d and one ERROR line with %q\n%s", code, want, res)
	}
}

// get reads a resource through the API, as the test's own check.
func armGet(t *testing.T, s *testserver.Server, path string) map[string]any {
	t.Helper()
	code, body := armCall{t, s, s.Token(t, testserver.ARMResource)}.do("GET", path, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %v", path, code, body)
	}
	return body
}

// dig walks a decoded JSON document.
func digJSON(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// TestCLIIoTHub drives the az-shaped `outpost iot hub` ARM commands
// against a real server and checks what they did through the API: a hub
// created with a system-assigned identity that gets a role on a storage
// account, a user-assigned identity added, identity-based storage and Event
// Hubs endpoints (the latter switched from key-based), routes, a route
// test, messages a device sends delivered along the routes, message
// enrichments, file upload settings, --set, and deletes.
func TestCLIIoTHub(t *testing.T) {
	t.Parallel() // az and the CLI spend most of their time starting up: overlap them
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.Hub.RoutingMinBatchFrequency = time.Second }))
	s.Require443(t)
	out := newHubCLI(t, s)
	const group = "rg-cli-iothub"
	sub := s.App.Installation().SubscriptionID
	acct := createStorageAccount(t, s, group, "", "")
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/routed", storageAPI, `{"properties":{}}`)
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/uploads", storageAPI, `{"properties":{}}`)
	eh := createMessagingEntity(t, s, group, "Microsoft.EventHub", "eventhubs", "")
	uaiID := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cli-uai"
	uai := putAndWait(t, s, uaiID, "2023-01-31", `{"location":"westus"}`)
	uaiPrincipal, _ := digJSON(uai, "properties", "principalId").(string)
	name := uniqueHubName("clihub")
	hubID := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.Devices/IotHubs/" + name
	const v = "?api-version=2023-06-30"

	// Create: az's defaults and flags, the system-assigned identity given a
	// role by name at the storage account (--role/--scopes).
	var hub map[string]any
	out.decode(&hub, "iot", "hub", "create", "-n", name, "-g", group, "--sku", "S1", "--partition-count", "2",
		"--rd", "3", "--mi-system-assigned", "--role", "Storage Blob Data Contributor", "--scopes", acct.ID,
		"--tags", "env=test", "team=iot", "--dla", "false")
	principal, _ := digJSON(hub, "identity", "principalId").(string)
	if digJSON(hub, "id") != hubID || digJSON(hub, "identity", "type") != "SystemAssigned" || principal == "" ||
		digJSON(hub, "properties", "provisioningState") != "Succeeded" || digJSON(hub, "tags", "team") != "iot" {
		t.Fatalf("create printed %v", hub)
	}
	api := armGet(t, s, hubID+v)
	if p := digJSON(api, "properties", "eventHubEndpoints", "events"); digJSON(p, "partitionCount") != 2.0 || digJSON(p, "retentionTimeInDays") != 3.0 {
		t.Errorf("events endpoint %v, want 2 partitions kept 3 days", p)
	}
	if c2d := digJSON(api, "properties", "cloudToDevice"); digJSON(c2d, "maxDeliveryCount") != 10.0 || digJSON(c2d, "defaultTtlAsIso8601") != "PT1H" ||
		digJSON(c2d, "feedback", "lockDurationAsIso8601") != "PT5S" || digJSON(api, "properties", "disableLocalAuth") != false {
		t.Errorf("create did not send az's defaults: %v", digJSON(api, "properties"))
	}
	filter := url.QueryEscape("principalId eq '" + principal + "'")
	ras := armGet(t, s, acct.ID+"/providers/Microsoft.Authorization/roleAssignments?$filter="+filter+"&api-version=2022-04-01")
	if role, _ := digJSON(ras, "value", 0, "properties", "roleDefinitionId").(string); !strings.HasSuffix(role, storageBlobDataContributor) {
		t.Errorf("role assignments of the hub's identity at the account: %v", ras)
	}

	// Identities: add the user-assigned one; the system one stays.
	var ident map[string]any
	out.decode(&ident, "iot", "hub", "identity", "assign", "-n", name, "--user-assigned", uaiID)
	if ident["type"] != "SystemAssigned, UserAssigned" || ident["principalId"] != principal {
		t.Fatalf("identity assign printed %v", ident)
	}
	var shownIdent map[string]any
	out.decode(&shownIdent, "iot", "hub", "identity", "show", "--ids", hubID)
	if shownIdent["type"] != ident["type"] || len(digJSON(shownIdent, "userAssignedIdentities").(map[string]any)) != 1 {
		t.Errorf("identity show printed %v", shownIdent)
	}

	// Endpoints: identity-based storage (system identity, which holds the
	// role), key-based Event Hubs switched to the user-assigned identity.
	blobURI := "https://" + acct.Name + ".blob." + s.Config.DNSSuffix
	var eps map[string]any
	out.decode(&eps, "iot", "hub", "routing-endpoint", "create", "--hub-name", name, "-n", "store", "-t", "azurestoragecontainer",
		"-r", group, "-s", sub, "--auth-type", "identityBased", "--endpoint-uri", blobURI, "--container", "routed", "--encoding", "json", "-b", "1")
	if st := digJSON(eps, "storageContainers", 0); digJSON(st, "name") != "store" || digJSON(st, "authenticationType") != "identityBased" ||
		digJSON(st, "identity") != nil || digJSON(st, "maxChunkSizeInBytes") != 314572800.0 || digJSON(st, "batchFrequencyInSeconds") != 1.0 {
		t.Errorf("routing-endpoint create printed %v", eps)
	}
	ehConn := "Endpoint=sb://" + eh.Host + "/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + eh.Key + ";EntityPath=" + eh.Name
	out.ok("iot", "hub", "routing-endpoint", "create", "--hub-name", name, "-g", group, "-n", "hot", "-t", "eventhub",
		"-r", group, "-s", sub, "-c", ehConn)
	var hot map[string]any
	out.decode(&hot, "iot", "hub", "routing-endpoint", "update", "--hub-name", name, "-n", "hot", "--auth-type", "identityBased", "--identity", uaiID)
	if hot["authenticationType"] != "identityBased" || hot["connectionString"] != nil || hot["endpointUri"] != "sb://"+eh.Host+"/" ||
		hot["entityPath"] != eh.Name || digJSON(hot, "identity", "userAssignedIdentity") != uaiID {
		t.Errorf("routing-endpoint update to identityBased printed %v", hot)
	}
	ep := digJSON(armGet(t, s, hubID+v), "properties", "routing", "endpoints", "eventHubs", 0)
	if digJSON(ep, "authenticationType") != "identityBased" || digJSON(ep, "connectionString") != nil {
		t.Errorf("the hub's event hub endpoint after the switch: %v", ep)
	}
	assignRole(t, s, uaiPrincipal, eventHubsDataSender, eh.ID)

	// Routes, and a route test the server evaluates.
	out.ok("iot", "hub", "route", "create", "--hub-name", name, "-n", "critical", "-s", "devicemessages", "--en", "store", "-c", "level = 'critical'")
	var routes []map[string]any
	out.decode(&routes, "iot", "hub", "route", "create", "--hub-name", name, "-n", "all", "--source", "DeviceMessages", "--endpoint", "hot", "-e", "false")
	if len(routes) != 2 || routes[0]["source"] != "DeviceMessages" || routes[1]["isEnabled"] != false || routes[0]["condition"] != "level = 'critical'" {
		t.Fatalf("route create printed %v", routes)
	}
	out.decode(&routes, "iot", "hub", "route", "update", "--hub-name", name, "-n", "all", "--enabled", "true")
	if routes[1]["isEnabled"] != true {
		t.Errorf("route update printed %v", routes)
	}
	// Messages take the routes: the critical one to the container (the
	// system identity's role), both to the event hub (the user identity's).
	// The hub's device front end may serve a routing change a moment late
	// (it answers from its cached hub and refreshes in the background), so
	// the pair is sent again until the routes have carried one.
	testserver.MapHosts(t, s.IP, digJSON(hub, "properties", "hostName").(string))
	out.ok("iot", "hub", "device-identity", "create", "-n", name, "-d", "sensor")
	cred, _ := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
	blobs, _ := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, cred, blobOptions(s))
	// JSON-encoded blobs carry a body that is not UTF-8 JSON as base64.
	critical, info := base64.StdEncoding.EncodeToString([]byte("hot!")), base64.StdEncoding.EncodeToString([]byte("fine"))
	var stored string
	var events []map[string]any
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		out.ok("iot", "device", "send-d2c-message", "-n", name, "-d", "sensor", "--data", "hot!", "--props", "level=critical")
		out.ok("iot", "device", "send-d2c-message", "-n", name, "-d", "sensor", "--data", "fine", "--props", "level=info")
		for wait := time.Now().Add(5 * time.Second); time.Now().Before(wait); time.Sleep(500 * time.Millisecond) {
			_, files := containerBlobs(t, blobs, "routed")
			stored = ""
			for _, f := range files {
				stored += string(f)
			}
			if events = readEventHub(t, s, eh); strings.Contains(stored, critical) && len(events) >= 2 {
				break
			}
		}
		if strings.Contains(stored, critical) && len(events) >= 2 {
			break
		}
	}
	if !strings.Contains(stored, critical) || strings.Contains(stored, info) {
		t.Errorf("the container holds %q, want critical messages only; endpoint health %v", stored, armGet(t, s, hubID+"/routingEndpointsHealth"+v))
	}
	if len(events) < 2 {
		t.Errorf("the event hub got %d events, want both messages of a pair: %v", len(events), events)
	}

	var result map[string]any
	out.decode(&result, "iot", "hub", "route", "test", "--hub-name", name, "-n", "critical", "--ap", `{"level":"critical"}`, "-b", "{}")
	if result["result"] != "true" {
		t.Errorf("route test of a matching message: %v", result)
	}
	out.decode(&result, "iot", "hub", "route", "test", "--hub-name", name, "-n", "critical", "--ap", `{"level":"info"}`)
	if result["result"] != "false" {
		t.Errorf("route test of a message that does not match: %v", result)
	}
	out.decode(&result, "iot", "hub", "route", "test", "--hub-name", name, "-s", "devicemessages", "--ap", `{"level":"critical"}`)
	if matched, _ := result["routes"].([]any); len(matched) != 2 {
		t.Errorf("route test of every device message route: %v", result)
	}

	// Enrichments print the hub, as az's do.
	var withEnrichment map[string]any
	out.decode(&withEnrichment, "iot", "hub", "message-enrichment", "create", "-n", name, "-k", "site", "-v", "lab", "-e", "store", "hot")
	if e := digJSON(withEnrichment, "properties", "routing", "enrichments", 0); digJSON(e, "key") != "site" || len(digJSON(e, "endpointNames").([]any)) != 2 {
		t.Errorf("message-enrichment create printed the enrichments %v", digJSON(withEnrichment, "properties", "routing", "enrichments"))
	}
	out.ok("iot", "hub", "message-enrichment", "update", "-n", name, "-k", "site", "-v", "$twin.tags.site", "-e", "store")
	var enrichments []map[string]any
	out.decode(&enrichments, "iot", "hub", "message-enrichment", "list", "-n", name)
	if len(enrichments) != 1 || enrichments[0]["value"] != "$twin.tags.site" {
		t.Errorf("message-enrichment list printed %v", enrichments)
	}

	// File upload: identity-based with the user-assigned identity, then
	// key-based; settings and notifications; a --set in the same update.
	assignRole(t, s, uaiPrincipal, storageBlobDataContributor, acct.ID)
	conn := "DefaultEndpointsProtocol=https;AccountName=" + acct.Name + ";AccountKey=" + acct.Key + ";EndpointSuffix=" + s.Config.DNSSuffix
	out.ok("iot", "hub", "update", "-n", name, "--fcs", conn, "--fc", "uploads", "--fsa", "identityBased", "--fsi", uaiID,
		"--fn", "true", "--fnd", "5", "--fnt", "2", "--fst", "3", "--set", "tags.owner=cli")
	api = armGet(t, s, hubID+v)
	props := digJSON(api, "properties")
	if st := digJSON(props, "storageEndpoints", "$default"); digJSON(st, "containerName") != "uploads" || digJSON(st, "authenticationType") != "identityBased" ||
		digJSON(st, "identity", "userAssignedIdentity") != uaiID || digJSON(st, "sasTtlAsIso8601") != "PT3H" {
		t.Errorf("file upload storage after update: %v", st)
	}
	if fn := digJSON(props, "messagingEndpoints", "fileNotifications"); digJSON(props, "enableFileUploadNotifications") != true ||
		digJSON(fn, "maxDeliveryCount") != 5.0 || digJSON(fn, "ttlAsIso8601") != "PT2H" || digJSON(api, "tags", "owner") != "cli" || digJSON(api, "tags", "env") != "test" {
		t.Errorf("file notifications %v, tags %v", fn, api["tags"])
	}
	out.ok("iot", "hub", "update", "-n", name, "-g", group, "--fsa", "keyBased", "--fn", "false")
	api = armGet(t, s, hubID+v)
	if st := digJSON(api, "properties", "storageEndpoints", "$default"); digJSON(st, "authenticationType") != "keyBased" || digJSON(st, "identity") != nil ||
		digJSON(api, "properties", "enableFileUploadNotifications") != false {
		t.Errorf("file upload storage after --fsa keyBased: %v", st)
	}

	// Refusals: the client's (exit 2), the server's (its code and message).
	out.fails(2, "the following arguments are required: --endpoint-type", "iot", "hub", "routing-endpoint", "create", "--hub-name", name, "-n", "x", "-r", group, "-s", sub)
	out.fails(2, "In order to use an identity for authentication, you must select --auth-type as 'identityBased'",
		"iot", "hub", "routing-endpoint", "create", "--hub-name", name, "-n", "x", "-t", "eventhub", "-r", group, "-s", sub, "--identity", uaiID)
	out.fails(1, "No route found.", "iot", "hub", "route", "show", "--hub-name", name, "-n", "nope")
	out.fails(1, "(", "iot", "hub", "route", "create", "--hub-name", name, "-n", "bad", "-s", "devicemessages", "--en", "undefined-endpoint")
	out.fails(2, "System managed identity [--mi-system-assigned] must be enabled", "iot", "hub", "create", "-n", "other", "-g", group, "--fsa", "identityBased")

	// Back to key-based: the connection string again, the identity gone.
	out.decode(&hot, "iot", "hub", "routing-endpoint", "update", "--hub-name", name, "-n", "hot", "--auth-type", "keyBased", "-c", ehConn)
	if hot["authenticationType"] != "keyBased" || hot["connectionString"] == nil || hot["identity"] != nil {
		t.Errorf("routing-endpoint update to keyBased printed %v", hot)
	}
	// The server refuses to drop an identity an endpoint uses, and says so.
	out.fails(1, "(400004) endpoint 'store' (properties.routing.endpoints.storageContainers[0]) uses the hub's system-assigned identity",
		"iot", "hub", "identity", "remove", "-n", name, "--system")

	// Deletes: a route, the enrichment, an endpoint, the user identity.
	out.decode(&routes, "iot", "hub", "route", "delete", "--hub-name", name, "-n", "all")
	if len(routes) != 1 || routes[0]["name"] != "critical" {
		t.Errorf("route delete printed %v", routes)
	}
	out.ok("iot", "hub", "message-enrichment", "delete", "-n", name, "-k", "site")
	out.decode(&eps, "iot", "hub", "routing-endpoint", "delete", "--hub-name", name, "-n", "hot")
	if l, _ := eps["eventHubs"].([]any); len(l) != 0 || len(eps["storageContainers"].([]any)) != 1 {
		t.Errorf("routing-endpoint delete printed %v", eps)
	}
	out.decode(&ident, "iot", "hub", "identity", "remove", "-n", name, "--user-assigned", uaiID)
	if ident["type"] != "SystemAssigned" || ident["userAssignedIdentities"] != nil {
		t.Errorf("identity remove printed %v", ident)
	}
	routing := digJSON(armGet(t, s, hubID+v), "properties", "routing")
	if len(digJSON(routing, "routes").([]any)) != 1 || len(digJSON(routing, "endpoints", "eventHubs").([]any)) != 0 {
		t.Errorf("routing after the deletes: %v", routing)
	}
	// Every storage endpoint (by type) and every route go; then the system
	// identity can.
	out.ok("iot", "hub", "route", "delete", "--hub-name", name)
	out.decode(&eps, "iot", "hub", "routing-endpoint", "delete", "--hub-name", name, "-t", "azurestoragecontainer")
	if l, _ := eps["storageContainers"].([]any); len(l) != 0 {
		t.Errorf("routing-endpoint delete -t printed %v", eps)
	}
	out.decode(&ident, "iot", "hub", "identity", "remove", "-n", name, "--system-assigned")
	if ident["type"] != "None" || ident["principalId"] != nil {
		t.Errorf("identity remove --system-assigned printed %v", ident)
	}
	res := out.ok("iot", "hub", "delete", "-n", name)
	if res.Stdout != "" {
		t.Errorf("delete printed %q", res.Stdout)
	}
	out.fails(3, "(ResourceNotFound)", "iot", "hub", "show", "-n", name, "-g", group)
}

// TestCLIIoTHubMatchesAz runs the same `iot hub` reads with Debian's az
// 2.45 and with outpost on the same hub and requires the same output:
// tables (az's auto table of its SDK models), --query with json and tsv,
// and whole JSON documents where the server's JSON and the SDK model agree.
// (Whole hubs differ: az prints every nested model field, null when unset,
// and durations and times as Python's str() and isoformat() of them.)
func TestCLIIoTHubMatchesAz(t *testing.T) {
	t.Parallel() // az and the CLI spend most of their time starting up: overlap them
	s := testserver.Start(t)
	env := s.Env()
	secret := env["AZURE_CLIENT_SECRET"]
	az := newAzCLI(t, s, secret)
	azRegisterCloud(az, s)
	az.ok("login", "--service-principal", "-u", env["AZURE_CLIENT_ID"], "-p", secret, "--tenant", env["AZURE_TENANT_ID"])
	out := newHubCLI(t, s)
	const group = "rg-cli-vs-az"
	sub := s.App.Installation().SubscriptionID
	acct := createStorageAccount(t, s, group, "", "")
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/archive", storageAPI, `{"properties":{}}`)
	name := uniqueHubName("vsaz")
	out.ok("iot", "hub", "create", "-n", name, "-g", group, "--mi-system-assigned", "--tags", "env=test", "--partition-count", "2")
	conn := "DefaultEndpointsProtocol=https;AccountName=" + acct.Name + ";AccountKey=" + acct.Key + ";EndpointSuffix=" + s.Config.DNSSuffix
	out.ok("iot", "hub", "routing-endpoint", "create", "--hub-name", name, "-n", "archive", "-t", "azurestoragecontainer",
		"-r", group, "-s", sub, "-c", conn, "--container", "archive", "--encoding", "json")
	out.ok("iot", "hub", "route", "create", "--hub-name", name, "-n", "to-archive", "-s", "devicemessages", "--en", "archive", "-c", "level = 'critical'")
	out.ok("iot", "hub", "route", "create", "--hub-name", name, "-n", "twins", "-s", "twinchangeevents", "--en", "events", "-e", "false")
	out.ok("iot", "hub", "message-enrichment", "create", "-n", name, "-k", "site", "-v", "lab", "-e", "archive")

	for _, args := range [][]string{
		{"iot", "hub", "show", "-n", name, "-g", group, "-o", "table"},
		{"iot", "hub", "show", "-n", name, "-o", "tsv", "--query", "[name, location, sku.name, sku.capacity, properties.state]"},
		{"iot", "hub", "show", "-n", name, "-g", group, "-o", "json", "--query",
			"{name:name, sku:sku.name, partitions:properties.eventHubEndpoints.events.partitionCount, identity:identity.type, tags:tags}"},
		{"iot", "hub", "list", "-g", group, "-o", "table"},
		{"iot", "hub", "list", "-o", "table", "--query", "[].{Name:name, Group:resourcegroup, Sku:sku.name, State:properties.state}"},
		{"iot", "hub", "identity", "show", "-n", name, "-o", "table"},
		{"iot", "hub", "identity", "show", "-n", name, "-o", "json"},
		{"iot", "hub", "route", "list", "--hub-name", name, "-o", "table"},
		{"iot", "hub", "route", "list", "--hub-name", name, "-o", "json"},
		{"iot", "hub", "route", "list", "--hub-name", name, "-o", "tsv", "--query", "[?isEnabled].name"},
		{"iot", "hub", "route", "show", "--hub-name", name, "-n", "to-archive", "-o", "table"},
		{"iot", "hub", "route", "list", "--hub-name", name, "-o", "table", "--query", "[?source=='DeviceMessages']"},
		{"iot", "hub", "routing-endpoint", "list", "--hub-name", name, "-t", "azurestoragecontainer", "-o", "table"},
		{"iot", "hub", "routing-endpoint", "list", "--hub-name", name, "-o", "json"},
		{"iot", "hub", "route", "test", "--hub-name", name, "-n", "to-archive", "--ap", `{"level":"critical"}`, "-o", "json"},
		{"iot", "hub", "route", "test", "--hub-name", name, "-s", "devicemessages", "-o", "json"},
		{"iot", "hub", "message-enrichment", "list", "-n", name, "-o", "json"},
		{"iot", "hub", "routing-endpoint", "show", "--hub-name", name, "-n", "archive", "-o", "table", "--query", "{name:name, container:containerName, encoding:encoding, batch:batchFrequencyInSeconds}"},
		{"iot", "hub", "message-enrichment", "list", "-n", name, "-o", "table"},
		{"iot", "hub", "policy", "list", "--hub-name", name, "-o", "table", "--query", "[].{name:keyName, rights:rights}"},
		{"iot", "hub", "policy", "list", "--hub-name", name, "-o", "json"},
		{"iot", "hub", "policy", "show", "--hub-name", name, "-n", "service", "-o", "json"},
		{"iot", "hub", "show", "--ids", "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.Devices/IotHubs/" + name, "-o", "table"},
		{"iot", "hub", "show-connection-string", "-n", name, "-o", "tsv"},
	} {
		want := az.ok(args...).Stdout
		got := out.ok(args...).Stdout
		if got != want {
			t.Errorf("%s\n--- az:\n%s--- outpost:\n%s", strings.Join(args, " "), want, got)
		}
	}
}
