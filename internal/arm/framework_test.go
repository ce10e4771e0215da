package arm_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/armtest"
	"github.com/outpost-iot/outpost/internal/store"
)

// widgets is a test resource type: long-running, with a child type and an
// action, so the framework is exercised without any real provider.
type widgets struct {
	provisioned chan string
	failNext    bool
}

func (w *widgets) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: "Outpost.Test", Type: "widgets", APIVersions: []string{"2024-01-01"},
		LongRunning: true, Actions: []string{"listSecrets"}}
}

func (w *widgets) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	var props struct {
		Size int `json:"size"`
	}
	if err := req.Body.Decode("properties", &props); err != nil {
		return nil, arm.Errorf(400, "InvalidProperties", "%v", err)
	}
	if props.Size <= 0 {
		return nil, arm.Errorf(400, "InvalidSize", "properties.size must be positive, got %d", props.Size)
	}
	doc := arm.Document{}
	doc.Set("location", req.Body.String("location"))
	doc.Set("properties", map[string]any{"size": props.Size})
	return doc, nil
}

func (w *widgets) Provision(_ context.Context, id arm.ResourceID, doc arm.Document) (arm.Document, error) {
	if w.failNext {
		w.failNext = false
		return nil, arm.Errorf(409, "WidgetJammed", "the widget %s jammed", id.Name())
	}
	var props map[string]any
	_ = doc.Decode("properties", &props)
	props["serial"] = "w-" + id.Name()
	doc.Set("properties", props)
	w.provisioned <- id.Name()
	return doc, nil
}

func (w *widgets) Deprovision(context.Context, store.Resource) error { return nil }

func (w *widgets) Action(_ context.Context, res store.Resource, action string, _ json.RawMessage) (any, error) {
	return map[string]string{"action": action, "secret": "s-" + res.Name}, nil
}

type parts struct{ deprovisioned []string }

func (p *parts) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: "Outpost.Test", Type: "widgets/parts", APIVersions: []string{"2024-01-01"}}
}
func (p *parts) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	doc := arm.Document{}
	doc.Set("properties", map[string]any{})
	return doc, nil
}
func (p *parts) Provision(_ context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	return doc, nil
}
func (p *parts) Deprovision(_ context.Context, res store.Resource) error {
	p.deprovisioned = append(p.deprovisioned, res.Name)
	return nil
}

type fixture struct {
	arm  *armtest.Server
	w    *widgets
	p    *parts
	sub  string
	base string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := armtest.New(t)
	f := &fixture{arm: s, w: &widgets{provisioned: make(chan string, 10)}, p: &parts{}, sub: s.SubscriptionID()}
	s.Serve(t, []arm.ResourceType{f.w, f.p})
	f.base = s.GroupID("rg") + "/providers/Outpost.Test/widgets"
	return f
}

func (f *fixture) do(t *testing.T, method, path, body string, want int, headers ...string) (*http.Response, map[string]any) {
	t.Helper()
	return f.arm.Do(t, method, path, body, want, headers...)
}

func (f *fixture) pollUntilTerminal(t *testing.T, asyncURL string) map[string]any {
	t.Helper()
	return f.arm.Wait(t, asyncURL)
}

func TestLongRunningPutAndDelete(t *testing.T) {
	f := newFixture(t)
	resp, body := f.do(t, "PUT", f.base+"/w1?api-version=2024-01-01", `{"location":"westus","properties":{"size":3}}`, 201)
	if state := body["properties"].(map[string]any)["provisioningState"]; state != "Accepted" {
		t.Errorf("initial provisioningState = %v, want Accepted", state)
	}
	async := resp.Header.Get("Azure-AsyncOperation")
	if !strings.HasPrefix(async, "https://") || resp.Header.Get("Location") == "" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("LRO headers missing: %v", resp.Header)
	}
	if st := f.pollUntilTerminal(t, async); st["status"] != "Succeeded" {
		t.Fatalf("operation = %v", st)
	}
	_, got := f.do(t, "GET", f.base+"/W1?api-version=2024-01-01", "", 200)
	props := got["properties"].(map[string]any)
	if props["serial"] != "w-w1" || props["provisioningState"] != "Succeeded" || got["name"] != "w1" || got["etag"] == nil {
		t.Errorf("provisioned widget = %v", got)
	}

	// A child resource, listed under its parent and removed with it.
	f.do(t, "PUT", f.base+"/w1/parts/p1?api-version=2024-01-01", `{}`, 201)
	_, list := f.do(t, "GET", f.base+"/w1/parts?api-version=2024-01-01", "", 200)
	if n := len(list["value"].([]any)); n != 1 {
		t.Errorf("listed %d parts, want 1", n)
	}
	f.do(t, "PUT", f.base+"/missing/parts/p1?api-version=2024-01-01", `{}`, 404)

	// An action.
	_, secret := f.do(t, "POST", f.base+"/w1/listSecrets?api-version=2024-01-01", "", 200)
	if secret["secret"] != "s-w1" {
		t.Errorf("action = %v", secret)
	}

	resp, _ = f.do(t, "DELETE", f.base+"/w1?api-version=2024-01-01", "", 202)
	if st := f.pollUntilTerminal(t, resp.Header.Get("Azure-AsyncOperation")); st["status"] != "Succeeded" {
		t.Fatalf("delete operation = %v", st)
	}
	f.do(t, "GET", f.base+"/w1?api-version=2024-01-01", "", 404)
	f.do(t, "GET", f.base+"/w1/parts/p1?api-version=2024-01-01", "", 404)
	if len(f.p.deprovisioned) != 1 {
		t.Errorf("child deprovisioned %v, want [p1]", f.p.deprovisioned)
	}
	f.do(t, "DELETE", f.base+"/w1?api-version=2024-01-01", "", 204)
}

func TestProvisionFailureIsReported(t *testing.T) {
	f := newFixture(t)
	f.w.failNext = true
	resp, _ := f.do(t, "PUT", f.base+"/jam?api-version=2024-01-01", `{"location":"westus","properties":{"size":1}}`, 201)
	st := f.pollUntilTerminal(t, resp.Header.Get("Azure-AsyncOperation"))
	e, _ := st["error"].(map[string]any)
	if st["status"] != "Failed" || e["code"] != "WidgetJammed" {
		t.Fatalf("operation = %v, want Failed with WidgetJammed", st)
	}
	_, got := f.do(t, "GET", f.base+"/jam?api-version=2024-01-01", "", 200)
	if s := got["properties"].(map[string]any)["provisioningState"]; s != "Failed" {
		t.Errorf("provisioningState = %v, want Failed", s)
	}
	// The Location poll answers with the operation's error.
	f.do(t, "GET", resp.Header.Get("Location"), "", 409)
}

func TestIfMatchAndValidation(t *testing.T) {
	f := newFixture(t)
	_, body := f.do(t, "PUT", f.base+"/w2?api-version=2024-01-01", `{"location":"westus","properties":{"size":0}}`, 400)
	if e := body["error"].(map[string]any); e["code"] != "InvalidSize" {
		t.Errorf("error = %v", e)
	}
	resp, _ := f.do(t, "PUT", f.base+"/w2?api-version=2024-01-01", `{"location":"westus","properties":{"size":1}}`, 201)
	f.pollUntilTerminal(t, resp.Header.Get("Azure-AsyncOperation"))
	<-f.w.provisioned
	getResp, _ := f.do(t, "GET", f.base+"/w2?api-version=2024-01-01", "", 200)
	etag := getResp.Header.Get("ETag")
	f.do(t, "PUT", f.base+"/w2?api-version=2024-01-01", `{"location":"westus","properties":{"size":2}}`, 412, "If-Match", `"stale"`)
	// az 2.45 sends this malformed form; the etag inside it counts.
	f.do(t, "PUT", f.base+"/w2?api-version=2024-01-01", `{"location":"westus","properties":{"size":2}}`, 200, "If-Match", "{'IF-MATCH': '"+strings.Trim(etag, `"`)+"'}")
	f.do(t, "PUT", f.base+"/new?api-version=2024-01-01", `{"location":"westus","properties":{"size":2}}`, 412, "If-Match", "*")
	f.do(t, "GET", f.base+"/w2?api-version=2023-01-01", "", 400)
	// PATCH merges into the stored document and is validated as a whole.
	f.do(t, "PATCH", f.base+"/w2?api-version=2024-01-01", `{"properties":{"size":-1}}`, 400)
	f.do(t, "PATCH", f.base+"/w2?api-version=2024-01-01", `{"tags":{"a":"b"}}`, 200)
}
