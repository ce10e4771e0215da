package servicebus

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/server"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
	"github.com/outpost-iot/outpost/internal/targets/access"
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

// fixture is the whole stack: SQLite store, ARM framework with the Service
// Bus types, the identity plane, an embedded bus and the data plane behind
// real TLS.
type fixture struct {
	t       testing.TB
	st      store.Store
	arm     *httptest.Server
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
	b, err := bus.Open(ctx, bus.Config{StoreDir: t.TempDir(), StreamPrefix: "test"}, log)
	if err != nil {
		t.Fatal(err)
	}
	keys := identity.NewKeyRing(st.Settings(), 24*time.Hour, time.Hour, time.Now)
	if err := keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, sub: inst.SubscriptionID}
	f.issuer = identity.NewIssuer(inst.TenantID, keys, time.Hour, 0, time.Now)
	validator := identity.NewValidator(inst.TenantID, keys, st.Principals(), time.Minute, time.Now)
	f.dir = identity.NewDirectory(st.Principals(), time.Now)
	f.rbac = rbac.NewEngine(st.Resources(), 0, time.Now, log)
	if err := f.rbac.ReloadNow(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Resources: st.Resources(), Bus: b, Access: access.New(validator, f.rbac, log), DNSSuffix: suffix, Log: log, MaxWait: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	f.h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	types, actions := sbresource.Types(sbresource.Config{
		DNSSuffix: suffix, Resources: st.Resources(), Runtime: f.h,
		Identities: msi.NewManager(st.Resources(), st.Principals(), f.dir, rbacAuthorizer{f.rbac}, inst.TenantID),
	})
	reg, err := arm.NewRegistry(types...)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range actions {
		reg.AddProviderAction(a)
	}
	svc := arm.NewService(arm.ServiceConfig{Store: st, Registry: reg, Installation: inst, Log: log})
	runner := arm.NewOperationRunner(svc, log)
	done := make(chan error, 2)
	go func() { done <- runner.Run(ctx) }()
	go func() { done <- f.h.Run(ctx) }()
	paths := &server.PathRouter{}
	arm.NewHandler(arm.HandlerConfig{Service: svc, Log: log}).Mount(paths)
	f.arm = httptest.NewTLSServer(paths)
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
	f.nsBase = "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.ServiceBus/namespaces/"
	t.Cleanup(func() {
		f.arm.Close()
		f.sb.Close()
		cancel()
		<-done
		<-done
		_ = b.Close(context.Background())
		st.Close()
	})
	f.armDo("PUT", "/subscriptions/"+f.sub+"/resourcegroups/rg?api-version=2021-04-01", `{"location":"westus"}`, 201)
	return f
}

// armDo calls the ARM endpoint and decodes the JSON answer.
func (f *fixture) armDo(method, path, body string, want int) map[string]any {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.arm.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t")
	resp, err := f.arm.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		f.t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if async := resp.Header.Get("Azure-AsyncOperation"); async != "" {
		f.waitOperation(async)
	}
	return m
}

func (f *fixture) waitOperation(async string) {
	f.t.Helper()
	path := strings.Replace(async, "https://"+f.arm.Listener.Addr().String(), "", 1)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st := f.armDo("GET", path, "", 200)
		switch st["status"] {
		case "Succeeded":
			return
		case "Failed", "Canceled":
			f.t.Fatalf("operation %v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatal("operation did not finish")
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
