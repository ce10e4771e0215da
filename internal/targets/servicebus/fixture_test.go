package servicebus

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/armtest"
	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
)

const suffix = "outpost.test"

type rbacAuthorizer struct{ e *rbac.Engine }

func (a rbacAuthorizer) AuthorizeAction(_ context.Context, p arm.Principal, action, scope string) error {
	if d := a.e.Authorize(p.ObjectID, action, false, scope); !d.Allowed {
		return arm.Errorf(http.StatusForbidden, "AuthorizationFailed", "%s", d.Reason)
	}
	return nil
}

// fixture is the whole stack: armtest's control plane with the Service
// Bus types and identity stack, an embedded bus and the data plane behind
// real TLS.
type fixture struct {
	t       testing.TB
	st      store.Store
	arm     *armtest.Server
	sb      *httptest.Server
	h       *Handler
	sub     string
	issuer  *identity.Issuer
	dir     *identity.Directory
	rbac    *rbac.Engine
	client  *http.Client
	nsBase  string // ARM id prefix of namespaces
	rootKey string
}

func newFixture(t testing.TB, opts ...func(*Config)) *fixture {
	t.Helper()
	s := armtest.New(t)
	st := s.Store
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bus.Open(ctx, bus.Config{StoreDir: t.TempDir(), StreamPrefix: "test"}, s.Log)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, arm: s, sub: s.SubscriptionID(), issuer: s.Identity.Issuer, dir: s.Identity.Directory, rbac: s.Identity.RBAC}
	cfg := Config{Resources: st.Resources(), Bus: b, Access: s.Identity.Checker, DNSSuffix: suffix, Log: s.Log, MaxWait: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	f.h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	types, actions := sbresource.Types(sbresource.Config{
		DNSSuffix: suffix, Resources: st.Resources(), Runtime: f.h,
		Identities: msi.NewManager(st.Resources(), st.Principals(), f.dir, rbacAuthorizer{f.rbac}, s.TenantID()),
	})
	done := make(chan error, 1)
	go func() { done <- f.h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = b.Close(context.Background())
	})
	s.Serve(t, types, actions...)
	f.sb = httptest.NewTLSServer(f.h)
	// Every namespace host resolves to the test server, as /etc/hosts
	// entries would.
	addr := f.sb.Listener.Addr().String()
	tr := f.sb.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test server's own certificate
	tr.MaxIdleConnsPerHost = 64
	f.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	f.nsBase = s.GroupID("rg") + "/providers/Microsoft.ServiceBus/namespaces/"
	t.Cleanup(f.sb.Close)
	return f
}

// armDo calls the ARM endpoint, waits for a long-running operation it
// starts, and decodes the JSON answer.
func (f *fixture) armDo(method, path, body string, want int) map[string]any {
	f.t.Helper()
	return f.arm.CallAndWait(f.t, method, path, body, want)
}

const apiVersion = "?api-version=2022-10-01-preview"

// namespace creates a namespace and returns RootManageSharedAccessKey's key.
func (f *fixture) namespace(name, props string) string {
	f.t.Helper()
	if props == "" {
		props = "{}"
	}
	f.armDo("PUT", f.nsBase+name+apiVersion, `{"location":"westus","sku":{"name":"Standard"},"properties":`+props+`}`, 201)
	keys := f.armDo("POST", f.nsBase+name+"/authorizationRules/RootManageSharedAccessKey/listKeys"+apiVersion, "", 200)
	key, _ := keys["primaryKey"].(string)
	if key == "" {
		f.t.Fatalf("listKeys = %v", keys)
	}
	f.rootKey = key
	return key
}

func (f *fixture) sas(ns, resource, keyName, key string) string {
	return sas.SignRawKey("https://"+ns+".servicebus."+suffix+"/"+resource, key, keyName, time.Now().Add(time.Hour))
}

// call sends a data-plane request to https://{ns}.servicebus.{suffix}{path}.
func (f *fixture) call(method, ns, path, auth, body string, headers map[string]string) (*http.Response, string) {
	f.t.Helper()
	req, _ := http.NewRequest(method, "https://"+ns+".servicebus."+suffix+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (f *fixture) expect(method, ns, path, auth, body string, headers map[string]string, want int) (*http.Response, string) {
	f.t.Helper()
	resp, b := f.call(method, ns, path, auth, body, headers)
	if resp.StatusCode != want {
		f.t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	return resp, b
}

func brokerProps(t testing.TB, resp *http.Response) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(resp.Header.Get("BrokerProperties")), &m); err != nil {
		t.Fatalf("BrokerProperties %q: %v", resp.Header.Get("BrokerProperties"), err)
	}
	return m
}
