package e2e

import (
	"testing"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestBuiltInEndpointConsumerGroups: $Default always exists; groups are
// created, listed, read and deleted under eventHubEndpoints/events, and go
// with the hub.
func TestBuiltInEndpointConsumerGroups(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-cg")
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	base := h.ID + "/eventHubEndpoints/events/ConsumerGroups"
	const v = "?api-version=2023-06-30"
	if code, body := op.do("GET", base+"/$Default"+v, ""); code != 200 || body["name"] != "$Default" {
		t.Fatalf("$Default: %d %v", code, body)
	}
	if code, body := op.do("PUT", base+"/analytics"+v, `{"properties":{"name":"analytics"}}`); code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	if code, body := op.do("PUT", base+"/bad name!"+v, `{}`); code != 400 {
		t.Errorf("bad name: %d %v", code, body)
	}
	_, list := op.do("GET", base+v, "")
	names := map[string]bool{}
	for _, g := range list["value"].([]any) {
		names[g.(map[string]any)["name"].(string)] = true
	}
	if !names["$Default"] || !names["analytics"] || len(names) != 2 {
		t.Errorf("list = %v", names)
	}
	if code, _ := op.do("DELETE", base+"/analytics"+v, ""); code != 200 {
		t.Errorf("delete: %d", code)
	}
	if code, _ := op.do("GET", base+"/analytics"+v, ""); code != 404 {
		t.Errorf("after delete: %d", code)
	}
	if code, _ := op.do("GET", h.ID+"/eventHubEndpoints/nope/ConsumerGroups/x"+v, ""); code != 404 {
		t.Errorf("a group under an unknown endpoint: %d", code)
	}
}
