package portal_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so tests see what the portal answers.
type browser struct {
	t    testing.TB
	c    *http.Client
	base string
}

func newBrowser(t testing.TB, s *testserver.Server) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := s.HTTPClient()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, c: c, base: s.Endpoint}
}

type answer struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (b *browser) do(req *http.Request) answer {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), header: resp.Header}
}

func (b *browser) get(path string) answer {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) answer {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := csrfPattern.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", body)
	}
	return m[1]
}

// signIn signs the browser in as a service principal.
func (b *browser) signIn(clientID, secret string) {
	b.t.Helper()
	page := b.get("/portal/signin")
	a := b.post("/portal/signin", url.Values{"csrf": {csrfOf(b.t, page.body)}, "kind": {"sp"},
		"client_id": {clientID}, "client_secret": {secret}, "next": {"/portal/"}})
	if a.status != http.StatusSeeOther || a.location != "/portal/" {
		b.t.Fatalf("sign-in: %d %s\n%s", a.status, a.location, a.body)
	}
}

// csrf reads the session's CSRF token from any signed-in page.
func (b *browser) csrf() string {
	b.t.Helper()
	return csrfOf(b.t, b.get("/portal/").body)
}

// api calls the resource manager as the operator.
type api struct {
	t     testing.TB
	s     *testserver.Server
	token string
}

func operatorAPI(t testing.TB, s *testserver.Server) api {
	return api{t, s, s.Token(t, testserver.ARMResource)}
}

func (a api) do(method, path, body string) (int, map[string]any) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.s.Endpoint+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.s.HTTPClient().Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	return resp.StatusCode, doc
}

func (a api) must(method, path, body string) map[string]any {
	a.t.Helper()
	code, doc := a.do(method, path, body)
	if code >= 300 {
		a.t.Fatalf("%s %s: %d %v", method, path, code, doc)
	}
	return doc
}

// waitHub polls a hub until it is provisioned.
func (a api) waitHub(id string) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		doc := a.must("GET", id+"?api-version=2023-06-30", "")
		props, _ := doc["properties"].(map[string]any)
		if props["provisioningState"] == "Succeeded" {
			return doc
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("hub %s not provisioned: %v", id, doc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type fixture struct {
	s                 *testserver.Server
	op                api
	group, hubID, uai string
	hubName           string
}

// newFixture starts Outpost with a resource group, a user-assigned identity
// and a hub without identities; opts tune the server.
func newFixture(t *testing.T, opts ...testserver.Option) fixture {
	t.Helper()
	s := testserver.Start(t, opts...)
	op := operatorAPI(t, s)
	sub := s.App.Installation().SubscriptionID
	f := fixture{s: s, op: op, group: "portal-rg"}
	op.must("PUT", "/subscriptions/"+sub+"/resourcegroups/"+f.group+"?api-version=2021-04-01", `{"location":"westus"}`)
	f.uai = "/subscriptions/" + sub + "/resourceGroups/" + f.group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/portal-uai"
	op.must("PUT", f.uai+"?api-version=2023-01-31", `{"location":"westus","tags":{"note":"<script>alert(1)</script>"}}`)
	f.hubName = fmt.Sprintf("portalhub%d", rand.IntN(1e6))
	f.hubID = "/subscriptions/" + sub + "/resourceGroups/" + f.group + "/providers/Microsoft.Devices/IotHubs/" + f.hubName
	op.must("PUT", f.hubID+"?api-version=2023-06-30", `{"location":"westus","sku":{"name":"S1","capacity":1}}`)
	op.waitHub(f.hubID)
	return f
}

func userPrincipal(t *testing.T, f fixture) string {
	t.Helper()
	doc := f.op.must("GET", f.uai+"?api-version=2023-01-31", "")
	props, _ := doc["properties"].(map[string]any)
	pid, _ := props["principalId"].(string)
	if pid == "" {
		t.Fatalf("identity without principal: %v", doc)
	}
	return pid
}

// ownerSAS is an iothubowner token for the fixture's hub.
func (f fixture) ownerSAS(t *testing.T) (host, token string) {
	t.Helper()
	keys := f.op.must("POST", f.hubID+"/listkeys?api-version=2023-06-30", "")
	host = f.hubName + "." + f.s.Config.DNSSuffix
	for _, k := range keys["value"].([]any) {
		if m := k.(map[string]any); m["keyName"] == "iothubowner" {
			tok, err := sas.Sign(host, m["primaryKey"].(string), "iothubowner", time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return host, tok
		}
	}
	t.Fatalf("no iothubowner key: %v", keys)
	return "", ""
}

// portalPages are every page the portal serves, for the session and CSRF
// checks.
func portalPages(f fixture) []string {
	hub, uai := url.QueryEscape(f.hubID), url.QueryEscape(f.uai)
	group := url.QueryEscape("/subscriptions/" + f.s.App.Installation().SubscriptionID + "/resourceGroups/" + f.group)
	return []string{
		"/portal/", "/portal/identities", "/portal/resource?id=" + hub, "/portal/identity?id=" + hub, "/portal/iam?id=" + hub,
		"/portal/iam?id=" + uai, "/portal/routing?id=" + hub, "/portal/fileupload?id=" + hub, "/portal/devices?id=" + hub,
		"/portal/jobs?id=" + hub, "/portal/deployments?id=" + group, "/portal/networking?id=" + uai, "/portal/signout",
	}
}

// waitProvisioned polls a resource until its provisioning state is final.
func (a api) waitProvisioned(id, apiVersion string) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		doc := a.must("GET", id+"?api-version="+apiVersion, "")
		props, _ := doc["properties"].(map[string]any)
		if st, _ := props["provisioningState"].(string); st == "" || st == "Succeeded" {
			return doc
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("%s not provisioned: %v", id, doc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
