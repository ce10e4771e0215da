package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestHubSystemIdentityRunAs: a hub with a system-assigned identity lends
// it to a program started with `outpost run --as <hub id>`; the program's
// DefaultAzureCredential token names the hub in xms_mirid — the path the
// hub's own egress uses.
func TestHubSystemIdentityRunAs(t *testing.T) {
	bin := testserver.BuildBinary(t)
	whoami := buildWhoami(t)
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		sub := s.App.Installation().SubscriptionID
		op := armCall{t, s, s.Token(t, testserver.ARMResource)}
		if code, body := op.do("PUT", "/subscriptions/"+sub+"/resourcegroups/rg-hub-mi?api-version=2021-04-01", `{"location":"westus"}`); code != 201 {
			t.Fatalf("group: %d %v", code, body)
		}
		id := "/subscriptions/" + sub + "/resourceGroups/rg-hub-mi/providers/Microsoft.Devices/IotHubs/mihub" + strings.ReplaceAll(s.IP, ".", "")
		if code, body := op.do("PUT", id+"?api-version=2021-03-31", `{"location":"westus","sku":{"name":"S1","capacity":1},"identity":{"type":"SystemAssigned"}}`); code != 201 {
			t.Fatalf("hub: %d %v", code, body)
		}
		var principal string
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := op.do("GET", id+"?api-version=2021-03-31", "")
			props, _ := body["properties"].(map[string]any)
			ident, _ := body["identity"].(map[string]any)
			if code == 200 && props["provisioningState"] == "Succeeded" {
				principal, _ = ident["principalId"].(string)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("hub not provisioned: %v", body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if principal == "" {
			t.Fatal("the hub has no system-assigned principal")
		}
		claims := runAs(t, s, bin, whoami, id)
		if claims["oid"] != principal || !strings.EqualFold(claims["xms_mirid"].(string), id) || claims["idtyp"] != "app" {
			t.Errorf("token claims under outpost run --as <hub> = %v (principal %s)", claims, principal)
		}
	})
}
