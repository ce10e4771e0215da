package app

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outpost-iot/outpost/internal/routing/engine"
)

type fakeRouting struct{}

func (fakeRouting) Hubs() []string { return []string{"h1"} }
func (fakeRouting) Stats(string) engine.Stats {
	return engine.Stats{Messages: 10, Routed: 7, BuiltIn: 3, Fallback: 3}
}
func (fakeRouting) Health(string) []engine.EndpointHealth {
	return []engine.EndpointHealth{
		{Name: "alerts", Status: engine.StatusUnhealthy, Attempts: 12, Failed: 15, Delivered: 4},
		{Name: engine.BuiltInEndpoint, Status: engine.StatusHealthy},
	}
}

func (fakeRouting) TokenRequestCounts() []engine.TokenRequestCount {
	return []engine.TokenRequestCount{
		{HubResourceID: "/subscriptions/s/resourcegroups/g/providers/microsoft.devices/iothubs/h1", Audience: engine.AudienceStorage, Requests: 2},
		{HubResourceID: "/subscriptions/s/resourcegroups/g/providers/microsoft.devices/iothubs/h1",
			UserAssigned: "/subscriptions/s/resourcegroups/g/providers/microsoft.managedidentity/userassignedidentities/u", Audience: engine.AudienceEventHubs, Requests: 1},
	}
}

// TestRoutingCollector: the engine's counters and health appear under
// the names docs/operations.md lists for alerting.
func TestRoutingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(routingCollector{fakeRouting{}})
	want := `
# HELP outpost_routing_endpoint_failures_in_a_row Failed send attempts in a row to a routing endpoint (0 once a send succeeds).
# TYPE outpost_routing_endpoint_failures_in_a_row gauge
outpost_routing_endpoint_failures_in_a_row{endpoint="alerts",hub="h1"} 12
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "outpost_routing_endpoint_failures_in_a_row"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[key] = v
		}
	}
	for key, v := range map[string]float64{
		"outpost_routing_messages_total,hub=h1,outcome=routed":                                            7,
		"outpost_routing_messages_total,hub=h1,outcome=builtin":                                           3,
		"outpost_routing_endpoint_delivered_total,endpoint=alerts,hub=h1":                                 4,
		"outpost_routing_endpoint_failed_total,endpoint=alerts,hub=h1":                                    15,
		"outpost_routing_endpoint_health,endpoint=alerts,hub=h1,status=unhealthy":                         1,
		"outpost_routing_endpoint_health,endpoint=alerts,hub=h1,status=healthy":                           0,
		"outpost_routing_token_requests_total,audience=https://storage.azure.com/,hub=h1,identity=system": 2,
		"outpost_routing_token_requests_total,audience=https://eventhubs.azure.net/,hub=h1,identity=/subscriptions/s/resourcegroups/g/providers/microsoft.managedidentity/userassignedidentities/u": 1,
	} {
		if g, ok := got[key]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", key, g, ok, v)
		}
	}
	for key := range got {
		if strings.Contains(key, "endpoint="+engine.BuiltInEndpoint) {
			t.Errorf("the built-in endpoint is exported: %s", key)
		}
	}
}
