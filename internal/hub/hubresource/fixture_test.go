package hubresource_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/hub/hubresource"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/server"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

// allowAll lets every caller assign every user-assigned identity.
type allowAll struct{}

func (allowAll) AuthorizeAction(context.Context, arm.Principal, string, string) error { return nil }

// runtime records the hub runtime calls; fail, when set, makes EnsureHub fail.
type runtime struct {
	mu      sync.Mutex
	ensured []hubresource.Hub
	removed []string
	fail    error
}

func (r *runtime) EnsureHub(_ context.Context, h hubresource.Hub) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.ensured = append(r.ensured, h)
	return nil
}

func (r *runtime) RemoveHub(_ context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = append(r.removed, name)
	return nil
}

func (r *runtime) last() (hubresource.Hub, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var h hubresource.Hub
	if len(r.ensured) > 0 {
		h = r.ensured[len(r.ensured)-1]
	}
	return h, append([]string(nil), r.removed...)
}

// counter is a DeviceCounter with fixed answers.
type counter map[string]store.DeviceCounts

func (c counter) Count(_ context.Context, hub string) (store.DeviceCounts, error) { return c[hub], nil }

// fixture is the real control plane (SQLite store, arm service, operation
// runner, handler) with the IotHubs type registered, over TLS.
type fixture struct {
	srv     *httptest.Server
	st      store.Store
	dir     *identity.Directory
	runtime *runtime
	sub     string
	tenant  string
}

const suffix = "outpost.test"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, log)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := arm.EnsureInstallation(ctx, st, "", "")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, runtime: &runtime{}, sub: inst.SubscriptionID, tenant: inst.TenantID}
	f.dir = identity.NewDirectory(st.Principals(), time.Now)
	manager := msi.NewManager(st.Resources(), st.Principals(), f.dir, allowAll{}, inst.TenantID)
	hubs := hubresource.New(hubresource.Config{
		DNSSuffix: suffix, Identities: manager, Resources: st.Resources(), Runtime: f.runtime,
		Devices: counter{"stats-hub": {Total: 3, Enabled: 2, Disabled: 1}},
	})
	reg, err := arm.NewRegistry(hubs, hubresource.NewIotHubKeys(st.Resources()), msi.NewUserAssignedIdentities(manager))
	if err != nil {
		t.Fatal(err)
	}
	for _, pa := range hubs.ProviderActions() {
		reg.AddProviderAction(pa)
	}
	svc := arm.NewService(arm.ServiceConfig{Store: st, Registry: reg, Installation: inst, Log: log})
	runner := arm.NewOperationRunner(svc, log)
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	paths := &server.PathRouter{}
	arm.NewHandler(arm.HandlerConfig{Service: svc, Log: log}).Mount(paths)
	f.srv = httptest.NewTLSServer(paths)
	t.Cleanup(func() {
		f.srv.Close()
		cancel()
		<-done
		st.Close()
	})
	f.group(t, "rg")
	return f
}

func (f *fixture) group(t *testing.T, name string) {
	t.Helper()
	f.call(t, "PUT", "/subscriptions/"+f.sub+"/resourcegroups/"+name+"?api-version=2021-04-01", `{"location":"westus"}`, 201)
}

func (f *fixture) hubID(group, name string) string {
	return "/subscriptions/" + f.sub + "/resourceGroups/" + group + "/providers/Microsoft.Devices/IotHubs/" + name
}

const v = "?api-version=2023-06-30"

// call sends a request and checks the status; it returns the response and
// the decoded body (nil when not an object).
func (f *fixture) call(t *testing.T, method, path, body string, want int, headers ...string) (*http.Response, map[string]any) {
	t.Helper()
	url := path
	if !strings.HasPrefix(path, "https://") {
		url = f.srv.URL + path
	}
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

// wait polls an Azure-AsyncOperation URL until the operation ends.
func (f *fixture) wait(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	async := resp.Header.Get("Azure-AsyncOperation")
	if !strings.HasPrefix(async, "https://") {
		t.Fatalf("no Azure-AsyncOperation header: %v", resp.Header)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, st := f.call(t, "GET", strings.Replace(async, "https://"+f.srv.Listener.Addr().String(), "", 1), "", 200)
		switch st["status"] {
		case "Succeeded", "Failed", "Canceled":
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("operation did not finish")
	return nil
}

// create PUTs a new hub and waits for it to be provisioned.
func (f *fixture) create(t *testing.T, group, name, body string) map[string]any {
	t.Helper()
	return f.put(t, group, name, body, 201)
}

// update PUTs an existing hub and waits for it to be provisioned.
func (f *fixture) update(t *testing.T, group, name, body string) map[string]any {
	t.Helper()
	return f.put(t, group, name, body, 200)
}

func (f *fixture) put(t *testing.T, group, name, body string, status int) map[string]any {
	t.Helper()
	resp, _ := f.call(t, "PUT", f.hubID(group, name)+v, body, status)
	if st := f.wait(t, resp); st["status"] != "Succeeded" {
		t.Fatalf("create %s: %v", name, st)
	}
	_, hub := f.call(t, "GET", f.hubID(group, name)+v, "", 200)
	return hub
}

// flatError sends a request that must fail with IoT Hub's flat error body.
func (f *fixture) flatError(t *testing.T, method, path, body string, status int, code string) string {
	t.Helper()
	_, e := f.call(t, method, path, body, status)
	if _, wrapped := e["error"]; wrapped || e["code"] != code || e["httpStatusCode"] == nil || e["message"] == nil {
		t.Fatalf("%s %s: body %v, want a flat {code: %s, httpStatusCode, message, details}", method, path, e, code)
	}
	return e["message"].(string)
}

// at walks a decoded JSON document: at(doc, "properties", "routing").
func at(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// eventually polls cond until it holds, failing after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
