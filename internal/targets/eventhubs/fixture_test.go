package eventhubs_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/arm/armtest"
	"github.com/outpost-iot/outpost/internal/bus"
	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
)

const suffix = "outpost.test"

// fixture is the real thing end to end: armtest's control plane with the
// Microsoft.EventHub and RBAC types and identity stack, an embedded
// JetStream bus and the data plane behind its own TLS server.
type fixture struct {
	arm     *armtest.Server
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
	s := armtest.New(t)
	st := s.Store
	b, err := bus.Open(context.Background(), bus.Config{StoreDir: t.TempDir()}, s.Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(cctx)
	})
	f := &fixture{arm: s, sub: s.SubscriptionID(), issuer: s.Identity.Issuer, dir: s.Identity.Directory}

	streams, err := eventhubs.NewStreams(b)
	if err != nil {
		t.Fatal(err)
	}
	cfg := eventhubs.Config{
		Resources: st.Resources(), Streams: streams, DNSSuffix: suffix, Log: s.Log,
		Access: s.Identity.Checker,
	}
	pcfg := ehresource.Config{DNSSuffix: suffix, Identities: s.Identities, Resources: st.Resources(), Runtime: streams}
	for _, o := range opts {
		o(&cfg, &pcfg)
	}
	f.handler, err = eventhubs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.Changed = f.handler.Invalidate
	provider := ehresource.New(pcfg)
	s.Serve(t, append(provider.Types(), s.RoleTypes()...), provider.ProviderActions()...)
	f.data = httptest.NewTLSServer(f.handler)
	t.Cleanup(f.data.Close)
	return f
}

const v = "?api-version=2024-01-01"

func (f *fixture) nsID(name string) string {
	return f.arm.GroupID("rg") + "/providers/Microsoft.EventHub/namespaces/" + name
}

// call sends an ARM request and checks the status; it returns the decoded body.
func (f *fixture) call(t testing.TB, method, path, body string, want int) map[string]any {
	t.Helper()
	return f.arm.Call(t, method, path, body, want)
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
