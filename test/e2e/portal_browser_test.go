package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// chromiumPath is Debian's Chromium, which the portal's browser tests drive
// headless through playwright-core (.ci/run installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CHROMIUM_PATH")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		testenv.Unavailable(t, "Chromium is not installed at %s (apt-get install chromium; .ci/run does)", p)
	}
	dir := clientsDir(t)
	for _, pkg := range []string{"playwright-core", "axe-core"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil {
			testenv.Unavailable(t, "npm package %s missing in %s: run `npm ci` there", pkg, dir)
		}
	}
	return p
}

// certSPKIs are the base64 SHA-256 hashes of the public keys in the
// certificate chain Outpost presents at its address (verified against its CA
// here), for Chromium's --ignore-certificate-errors-spki-list: the browser
// then accepts those certificates, and no others, without a change to the
// system's trust store. Chromium matches the chain the server sends, so the
// leaf's key must be listed, not only the CA's.
func certSPKIs(t *testing.T, s *testserver.Server) string {
	t.Helper()
	conn, err := tls.Dial("tcp", net.JoinHostPort(s.IP, "443"), &tls.Config{RootCAs: s.CertPool(), ServerName: s.IP, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to %s: %v", s.IP, err)
	}
	defer conn.Close()
	var out []string
	for _, c := range conn.ConnectionState().PeerCertificates {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		out = append(out, base64.StdEncoding.EncodeToString(sum[:]))
	}
	return strings.Join(out, ",")
}

// runPortalNode is runNodeTestEnv with room for a browser: the file's steps
// share one browser and build on each other, so the file as a whole gets
// five minutes rather than node's per-file 90 s.
func runPortalNode(t *testing.T, s *testserver.Server, file string, extra map[string]string) {
	t.Helper()
	dir := clientsDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "--test-timeout=300000", "--test-force-exit", file)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range s.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	t.Logf("node --test %s:\n%s", file, out)
	if err != nil {
		t.Fatalf("node --test %s: %v", file, err)
	}
}

// portalArtifacts is where screenshots and axe reports go: $PORTAL_ARTIFACTS
// (CI keeps it) or a temporary directory.
func portalArtifacts(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("PORTAL_ARTIFACTS"); d != "" {
		dir := filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

const (
	eventHubsDataSenderRole    = "2b629674-e913-4c01-ae53-ef4638d8f975"
	storageBlobDataContribRole = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
)

// TestPortalSeedInBrowser runs the seed document's portal steps for message
// routing, file upload and import/export, with both identity types, in
// headless Chromium, then checks the resources through the API and uses
// them: a device message routed to the event hub with the identity the
// portal chose, and an export job with the role the portal assigned.
func TestPortalSeedInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	forEachTier(t, func(t *testing.T, s *testserver.Server) { portalSeedInBrowser(t, s, chromium) })
}

func portalSeedInBrowser(t *testing.T, s *testserver.Server, chromium string) {
	s.Require443(t)
	const group = "rg-portal"
	sub := s.App.Installation().SubscriptionID
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}

	ensureGroup(t, s, group)
	uai := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/portal-uai"
	uaiPrincipal := putAndWait(t, s, uai, "2023-01-31",
		`{"location":"westus","tags":{"note":"<script>window.__portalXSS=1</script>"}}`)["properties"].(map[string]any)["principalId"].(string)
	eh := createMessagingEntity(t, s, group, "Microsoft.EventHub", "eventhubs", "")
	env := newJobsEnv(t, s, group)
	putAndWait(t, s, env.acct.ID+"/blobServices/default/containers/uploads", storageAPI, `{"properties":{}}`)
	h := createHub(t, s, group)
	key := createDevice(t, s, h, "portal-device")
	readerObject, readerClient, readerSecret := newServicePrincipal(t, s, "portal-reader")
	assignRole(t, s, readerObject, readerRole, "/subscriptions/"+sub)

	artifacts := portalArtifacts(t)
	runPortalNode(t, s, "portal-seed.test.mjs", map[string]string{
		"CHROMIUM_PATH": chromium, "OUTPOST_CERT_SPKI": certSPKIs(t, s), "PORTAL_ARTIFACTS": artifacts,
		"PORTAL_GROUP": group, "PORTAL_HUB": h.Name, "PORTAL_UAI": "portal-uai", "PORTAL_EH_NAMESPACE": eh.Namespace, "PORTAL_EVENTHUB": eh.Name,
		"PORTAL_STORAGE": env.acct.Name, "PORTAL_CONTAINER": "uploads",
		"PORTAL_READER_CLIENT_ID": readerClient, "PORTAL_READER_CLIENT_SECRET": readerSecret,
	})
	shots, _ := filepath.Glob(filepath.Join(artifacts, "*.png"))
	if len(shots) < 15 {
		t.Errorf("expected a screenshot of every page, found %d in %s", len(shots), artifacts)
	}
	t.Logf("portal screenshots and axe reports: %s", artifacts)

	// The hub: both identities, the endpoint switched to system-assigned,
	// the route, file upload with the system-assigned identity.
	code, hub := op.do("GET", h.ID+"?api-version=2023-06-30", "")
	if code != 200 {
		t.Fatalf("GET hub: %d %v", code, hub)
	}
	ident := hub["identity"].(map[string]any)
	hubPrincipal, _ := ident["principalId"].(string)
	if ident["type"] != "SystemAssigned, UserAssigned" || hubPrincipal == "" {
		t.Fatalf("hub identity: %v", ident)
	}
	props := hub["properties"].(map[string]any)
	routing := props["routing"].(map[string]any)
	ehs := routing["endpoints"].(map[string]any)["eventHubs"].([]any)
	if len(ehs) != 1 {
		t.Fatalf("event hub endpoints: %v", ehs)
	}
	ep := ehs[0].(map[string]any)
	if ep["name"] != "portal-eh" || ep["authenticationType"] != "identityBased" || ep["identity"] != nil || ep["entityPath"] != eh.Name ||
		ep["endpointUri"] != "sb://"+eh.Host {
		t.Errorf("endpoint after Change authentication type: %v", ep)
	}
	routes := routing["routes"].([]any)
	if len(routes) != 1 || routes[0].(map[string]any)["condition"] != "level = 'critical'" {
		t.Errorf("routes: %v", routes)
	}
	fu := props["storageEndpoints"].(map[string]any)["$default"].(map[string]any)
	if fu["containerName"] != "uploads" || fu["authenticationType"] != "identityBased" || fu["identity"] != nil || fu["sasTtlAsIso8601"] != "PT2H" ||
		props["enableFileUploadNotifications"] != true {
		t.Errorf("file upload settings: %v (notifications %v)", fu, props["enableFileUploadNotifications"])
	}
	fn := props["messagingEndpoints"].(map[string]any)["fileNotifications"].(map[string]any)
	if fn["ttlAsIso8601"] != "PT3H" || fn["maxDeliveryCount"] != float64(5) {
		t.Errorf("file notification settings: %v", fn)
	}

	// The role assignments made on the IAM pages.
	for _, c := range []struct{ scope, role, principal string }{
		{eh.NamespaceID, eventHubsDataSenderRole, uaiPrincipal},
		{eh.NamespaceID, eventHubsDataSenderRole, hubPrincipal},
		{env.acct.ID, storageBlobDataContribRole, uaiPrincipal},
		{env.acct.ID, storageBlobDataContribRole, hubPrincipal},
	} {
		_, list := op.do("GET", c.scope+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId%20eq%20'"+c.principal+"'", "")
		found := false
		for _, v := range list["value"].([]any) {
			p := v.(map[string]any)["properties"].(map[string]any)
			found = found || (strings.HasSuffix(p["roleDefinitionId"].(string), c.role) && strings.EqualFold(p["scope"].(string), c.scope))
		}
		if !found {
			t.Errorf("no role %s for %s at %s: %v", c.role, c.principal, c.scope, list)
		}
	}
	// Networking: selected networks with the trusted-services exception.
	_, rules := op.do("GET", eh.NamespaceID+"/networkRuleSets/default?api-version="+eventHubAPI, "")
	if rp := rules["properties"].(map[string]any); rp["defaultAction"] != "Deny" || rp["trustedServiceAccessEnabled"] != true {
		t.Errorf("event hubs network rules: %v", rp)
	}
	_, acct := op.do("GET", env.acct.ID+"?api-version="+storageAPI, "")
	if acls := acct["properties"].(map[string]any)["networkAcls"].(map[string]any); acls["defaultAction"] != "Deny" || acls["bypass"] != "AzureServices" {
		t.Errorf("storage network rules: %v", acls)
	}
	// The Reader changed nothing: the user-assigned identity is still there.
	if _, ok := ident["userAssignedIdentities"].(map[string]any)[uai]; !ok {
		t.Errorf("user-assigned identity gone after the Reader's refused Remove: %v", ident)
	}

	// Use what the portal configured: a critical message reaches the event
	// hub through the hub's system-assigned identity and the trusted-services
	// exception; an info message does not.
	token, _ := sas.Sign(h.HostName+"/devices/portal-device", key, "", time.Now().Add(time.Hour))
	for _, level := range []string{"info", "critical"} {
		req, _ := http.NewRequest("POST", "https://"+h.HostName+"/devices/portal-device/messages/events?api-version=2021-04-12", strings.NewReader(`{"level":"`+level+`"}`))
		req.Header.Set("Authorization", token)
		req.Header.Set("iothub-app-level", level)
		req.Header.Set("iothub-contenttype", "application/json")
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("send %s: %s", level, resp.Status)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	var got []map[string]any
	for time.Now().Before(deadline) {
		if got = readEventHub(t, s, eh); len(got) > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Two critical messages: the browser run's (sent to watch the endpoint
	// turn healthy) and this one; the info messages stay off the route.
	for time.Now().Before(deadline) && len(got) < 2 {
		time.Sleep(200 * time.Millisecond)
		got = readEventHub(t, s, eh)
	}
	if len(got) != 2 {
		t.Errorf("event hub received %d messages (%v), want the two critical ones", len(got), got)
	}
	for _, m := range got {
		if !strings.Contains(strings.ToLower(fmtAny(m)), "critical") {
			t.Errorf("event hub received a message the route's condition excludes: %v", m)
		}
	}

	// Import/export: the export job authenticates with the system-assigned
	// identity's Storage Blob Data Contributor role the portal assigned,
	// through the trusted-services exception the portal turned on.
	j := runJob(t, s, h, map[string]any{"type": "export", "outputBlobContainerUri": env.out, "excludeKeysInExport": true, "storageAuthenticationType": "identityBased"})
	if j.Status != "completed" {
		t.Fatalf("export with the system-assigned identity: %+v", j)
	}
	// The test reads the blob from outside the trusted services: open the
	// account to all networks first.
	if code, body := op.do("PATCH", env.acct.ID+"?api-version="+storageAPI, `{"properties":{"networkAcls":{"defaultAction":"Allow","bypass":"AzureServices","ipRules":[]}}}`); code != 200 {
		t.Fatalf("open the storage account: %d %v", code, body)
	}
	if !strings.Contains(string(env.get(t, "output", "devices.txt")), "portal-device") {
		t.Errorf("export does not list the device")
	}
}

// fmtAny renders a decoded event for a substring check.
func fmtAny(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				b.WriteString(k + "=")
				walk(e)
				b.WriteString(";")
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			b.WriteString(x)
		}
	}
	walk(v)
	return b.String()
}
