package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

// TestBuiltInEndpointFollowsRoutes: once routes exist, the built-in
// endpoint gets only what a route to "events" takes (with the enrichments
// for "events"), including twin change events routed there; with the
// fallback route off, the rest is dropped. When the routes are removed,
// device messages go straight to the built-in endpoint again.
func TestBuiltInEndpointFollowsRoutes(t *testing.T) {
	f := newFixture(t)
	const hub = "hubgate"
	f.hub(hubSpec{name: hub, routing: `{
	  "routes": [
	    {"name": "critical", "source": "DeviceMessages", "condition": "level = 'critical'", "endpointNames": ["events"], "isEnabled": true},
	    {"name": "twins", "source": "TwinChangeEvents", "condition": "true", "endpointNames": ["events"], "isEnabled": true}],
	  "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true", "endpointNames": ["events"], "isEnabled": false},
	  "enrichments": [{"key": "via", "value": "$iothubname", "endpointNames": ["events"]}]}`})
	for i := range 10 {
		level := map[bool]string{true: "critical", false: "normal"}[i%2 == 0]
		f.publish(hub, 2, fmt.Sprintf("dev%d", i%3), fmt.Sprintf(`{"i":%d}`, i), map[string]string{"level": level})
	}
	if err := f.stream.PublishSource(f.ctx, telemetry.SourceTwinChange, telemetry.Message{Hub: hub, DeviceID: "dev1",
		Payload: []byte(`{"properties":{"desired":{"x":1}}}`)}); err != nil {
		t.Fatal(err)
	}
	var got []telemetry.Message
	waitFor(t, 10*time.Second, "six messages on the built-in endpoint", func() bool { got = f.builtIn(hub); return len(got) >= 6 })
	time.Sleep(200 * time.Millisecond)
	if got = f.builtIn(hub); len(got) != 6 {
		t.Fatalf("built-in endpoint got %d messages, want 5 critical and 1 twin change", len(got))
	}
	twins := 0
	for _, m := range got {
		if m.App["via"] != hub {
			t.Errorf("no enrichment for events: %+v", m)
		}
		switch m.System[telemetry.PropMessageSource] {
		case "Telemetry":
			if m.App["level"] != "critical" {
				t.Errorf("a message no route takes reached the built-in endpoint: %+v", m)
			}
		case telemetry.SourceTwinChange:
			twins++
			if m.Partition != telemetry.Partition("dev1", 2) {
				t.Errorf("twin change event on partition %d", m.Partition)
			}
		default:
			t.Errorf("unexpected message %+v", m)
		}
	}
	if twins != 1 {
		t.Errorf("%d twin change events on the built-in endpoint, want 1", twins)
	}
	if st := f.engine.Stats(hub); st.BuiltIn != 6 || st.Unrouted != 5 || st.Fallback != 0 {
		t.Errorf("stats %+v", st)
	}

	// No routes, fallback on: device messages go straight to the built-in
	// endpoint, not through the router.
	f.hub(hubSpec{name: hub, routing: `{"routes": [], "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true", "endpointNames": ["events"], "isEnabled": true}}`})
	before := f.engine.Stats(hub).Messages
	for i := range 4 {
		f.publish(hub, 2, "dev9", fmt.Sprintf(`{"after":%d}`, i), nil)
	}
	if got = f.builtIn(hub); len(got) != 10 {
		t.Fatalf("built-in endpoint has %d messages, want 6 + 4", len(got))
	}
	if st := f.engine.Stats(hub); st.Messages != before {
		t.Errorf("the router read %d messages after its routes were removed", st.Messages-before)
	}
}
