package hubresource_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/armtest"
	"github.com/outpost-iot/outpost/internal/hub/hubresource"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/store"
)

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

// fixture is the real control plane (armtest: SQLite store, arm service,
// operation runner, handler) with the IotHubs type registered, over TLS.
type fixture struct {
	arm     *armtest.Server
	st      store.Store
	dir     *identity.Directory
	runtime *runtime
	sub     string
	tenant  string
}

const suffix = "outpost.test"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := armtest.New(t)
	st := s.Store
	f := &fixture{arm: s, st: st, runtime: &runtime{}, sub: s.SubscriptionID(), tenant: s.TenantID(), dir: s.Identity.Directory}
	hubs := hubresource.New(hubresource.Config{
		DNSSuffix: suffix, Identities: s.Identities, Resources: st.Resources(), Runtime: f.runtime,
		Devices: counter{"stats-hub": {Total: 3, Enabled: 2, Disabled: 1}},
	})
	s.Serve(t, []arm.ResourceType{hubs, hubresource.NewIotHubKeys(st.Resources()), msi.NewUserAssignedIdentities(s.Identities)},
		hubs.ProviderActions()...)
	return f
}

func (f *fixture) group(t *testing.T, name string) {
	t.Helper()
	f.arm.Group(t, name)
}

func (f *fixture) hubID(group, name string) string {
	return f.arm.GroupID(group) + "/providers/Microsoft.Devices/IotHubs/" + name
}

const v = "?api-version=2023-06-30"

// call sends a request and checks the status; it returns the response and
// the decoded body (nil when not an object).
func (f *fixture) call(t *testing.T, method, path, body string, want int, headers ...string) (*http.Response, map[string]any) {
	t.Helper()
	return f.arm.Do(t, method, path, body, want, headers...)
}

// wait polls an Azure-AsyncOperation URL until the operation ends.
func (f *fixture) wait(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	async := resp.Header.Get("Azure-AsyncOperation")
	if !strings.HasPrefix(async, "https://") {
		t.Fatalf("no Azure-AsyncOperation header: %v", resp.Header)
	}
	return f.arm.Wait(t, async)
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
