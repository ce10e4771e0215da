package msi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/identity"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/store"
)

// TestEndpointSelectsIdentity drives the App Service protocol: the header
// binds the request to a resource, and client_id / object_id / mi_res_id
// pick one of its identities, as azidentity's ManagedIdentityCredential asks.
func TestEndpointSelectsIdentity(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	uai, uaiP := f.userAssigned(t, "uai1")
	hub := "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/hub1"
	block, err := f.m.Provision(ctx, hub, msi.Block{Type: msi.TypeSystemAssignedUserAssigned, UserAssignedIdentities: map[string]*msi.UserAssignedRef{uai: {}}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"identity": block})
	if _, _, err := f.st.Resources().Put(ctx, hub, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: hub, Type: "Microsoft.Devices/IotHubs", Name: "hub1", Body: body}, nil
	}); err != nil {
		t.Fatal(err)
	}
	keys := identity.NewKeyRing(f.st.Settings(), time.Hour, time.Hour, time.Now)
	if err := keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	issuer := identity.NewIssuer("tenant-1", keys, time.Hour, 0, time.Now)
	signer, err := msi.LoadHeaderSigner(ctx, f.st.Settings())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(msi.NewEndpoint(msi.NewTokenSource(f.st.Resources(), f.st.Principals(), issuer), signer, nil))
	defer srv.Close()

	get := func(header string, q url.Values) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+msi.Path+"?"+q.Encode(), nil)
		if header != "" {
			req.Header.Set("X-IDENTITY-HEADER", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	claims := func(m map[string]any) map[string]any {
		parts := strings.Split(m["access_token"].(string), ".")
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c map[string]any
		_ = json.Unmarshal(b, &c)
		return c
	}
	q := func(kv ...string) url.Values {
		v := url.Values{"api-version": {"2019-08-01"}, "resource": {"https://storage.azure.com/"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	h := signer.Sign(hub)

	code, m := get(h, q())
	if code != 200 || claims(m)["oid"] != block.PrincipalID || !strings.EqualFold(claims(m)["xms_mirid"].(string), hub) {
		t.Fatalf("default identity = %d %v", code, m)
	}
	if _, err := m["expires_on"].(string); !err || m["token_type"] != "Bearer" || m["resource"] != "https://storage.azure.com/" {
		t.Errorf("response shape = %v", m)
	}
	for _, sel := range [][]string{{"client_id", uaiP.AppID}, {"object_id", uaiP.ObjectID}, {"principal_id", uaiP.ObjectID}, {"mi_res_id", uai}} {
		code, m := get(h, q(sel...))
		if code != 200 || claims(m)["oid"] != uaiP.ObjectID || !strings.EqualFold(claims(m)["xms_mirid"].(string), uai) {
			t.Errorf("select by %s = %d %v", sel[0], code, m)
		}
	}
	for name, tc := range map[string]struct {
		header string
		q      url.Values
		code   int
	}{
		"no header":        {"", q(), 401},
		"forged header":    {signer.Sign(hub)[:20] + "x", q(), 401},
		"no api-version":   {h, url.Values{"resource": {"https://storage.azure.com/"}}, 400},
		"no resource":      {h, url.Values{"api-version": {"2019-08-01"}}, 400},
		"unknown resource": {h, q("resource", "https://example.com/"), 400},
		"unknown client":   {h, q("client_id", "00000000-0000-0000-0000-000000000000"), 400},
	} {
		if code, m := get(tc.header, tc.q); code != tc.code || m["message"] == "" {
			t.Errorf("%s: %d %v, want %d with a message", name, code, m, tc.code)
		}
	}
}
