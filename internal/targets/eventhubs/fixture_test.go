package eventhubs_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
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
	"github.com/outpost-iot/outpost/internal/server"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
)

const suffix = "outpost.test"

// allowAll lets every caller assign every user-assigned identity.
type allowAll struct{}

func (allowAll) AuthorizeAction(context.Context, arm.Principal, string, string) error { return nil }

// fixture is the real thing end to end: SQLite store, ARM service and
// handler with the Microsoft.EventHub and RBAC types, the identity plane
// (keys, issuer, validator, RBAC engine), an embedded JetStream bus and the
// data plane, each HTTP surface behind its own TLS server.
type fixture struct {
	arm     *httptest.Server
	data    *httptest.Server
	handler *eventhubs.Handler
	dir     *identity.Directory
	issuer  *identity.Issuer
	sub     string
}

// fixtureOption adjusts the data plane's or the provider's configuration.
type fixtureOption func(*eventhubs.Config, *ehresource.Config)

func newFixture(t testing.TB, opts ...fixtureOption) *fixture {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inst, err := arm.EnsureInstallation(ctx, st, "", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Open(ctx, bus.Config{StoreDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(cctx)
	})

	keys := identity.NewKeyRing(st.Settings(), 24*time.Hour, 2*time.Hour, time.Now)
	if err := keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{sub: inst.SubscriptionID}
	f.issuer = identity.NewIssuer(inst.TenantID, keys, time.Hour, 0, time.Now)
	validator := identity.NewValidator(inst.TenantID, keys, st.Principals(), time.Minute, time.Now)
	f.dir = identity.NewDirectory(st.Principals(), time.Now)
	engine := rbac.NewEngine(st.Resources(), 0, time.Now, log)
	if err := engine.ReloadNow(ctx); err != nil {
		t.Fatal(err)
	}
	manager := msi.NewManager(st.Resources(), st.Principals(), f.dir, allowAll{}, inst.TenantID)

	streams, err := eventhubs.NewStreams(b)
	if err != nil {
		t.Fatal(err)
	}
	cfg := eventhubs.Config{
		Resources: st.Resources(), Streams: streams, DNSSuffix: suffix, Log: log,
		Access: access.New(validator, engine, log),
	}
	pcfg := ehresource.Config{DNSSuffix: suffix, Identities: manager, Resources: st.Resources(), Runtime: streams}
	for _, o := range opts {
		o(&cfg, &pcfg)
	}
	f.handler, err = eventhubs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.Changed = f.handler.Invalidate
	provider := ehresource.New(pcfg)
	types := append(provider.Types(), rbac.NewRoleAssignments(engine, f.dir, inst.TenantID, time.Now), rbac.NewRoleDefinitions(engine, time.Now))
	reg, err := arm.NewRegistry(types...)
	if err != nil {
		t.Fatal(err)
	}
	for _, pa := range provider.ProviderActions() {
		reg.AddProviderAction(pa)
	}
	svc := arm.NewService(arm.ServiceConfig{Store: st, Registry: reg, Installation: inst, Log: log})
	paths := &server.PathRouter{}
	arm.NewHandler(arm.HandlerConfig{Service: svc, Log: log}).Mount(paths)
	f.arm = httptest.NewTLSServer(paths)
	t.Cleanup(f.arm.Close)
	f.data = httptest.NewTLSServer(f.handler)
	t.Cleanup(f.data.Close)
	f.call(t, "PUT", "/subscriptions/"+f.sub+"/resourcegroups/rg?api-version=2021-04-01", `{"location":"westus"}`, 201)
	return f
}

const v = "?api-version=2024-01-01"

func (f *fixture) nsID(name string) string {
	return "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.EventHub/namespaces/" + name
}

// call sends an ARM request and checks the status; it returns the decoded body.
func (f *fixture) call(t testing.TB, method, path, body string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, f.arm.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.arm.Client().Do(req)
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
	return m
}

// namespace creates a namespace with an event hub of 4 partitions and
// returns the root rule's primary key.
func (f *fixture) namespace(t testing.TB, ns, eh, sku string) string {
	t.Helper()
	f.call(t, "PUT", f.nsID(ns)+v, `{"location":"westus","sku":{"name":"`+sku+`"}}`, 201)
	f.call(t, "PUT", f.nsID(ns)+"/eventhubs/"+eh+v, `{"properties":{"partitionCount":4}}`, 200)
	keys := f.call(t, "POST", f.nsID(ns)+"/authorizationRules/RootManageSharedAccessKey/listKeys"+v, "", 200)
	return keys["primaryKey"].(string)
}

// send POSTs to the data plane at {ns}.servicebus.{suffix}; it returns the
// status and body.
func (f *fixture) send(t testing.TB, ns, path, auth, contentType, body string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.data.URL+path, strings.NewReader(body))
	req.Host = ns + ".servicebus." + suffix
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.data.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

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
