package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/routing/engine"
)

// TestRoleRemovedMidStream: the identity loses its role → the endpoint turns
// unhealthy with the event hub's refusal, messages keep being accepted and
// are kept; the role comes back → every message arrives, in order per
// device.
func TestRoleRemovedMidStream(t *testing.T) {
	f := newFixture(t)
	ehID, _ := f.eventHub("ehns-two", "eh")
	p := f.hub(hubSpec{name: "hubrole", system: true, routing: ehRouting("ep1", "ehns-two", "eh", "", "true")})
	assignment := f.assign(p, roleEventHubsSender, ehID)

	sent := 0
	publish := func(n int) {
		for i := 0; i < n; i++ {
			f.publish("hubrole", 2, fmt.Sprintf("dev%d", sent%5), fmt.Sprintf(`{"i":%d}`, sent), map[string]string{"n": fmt.Sprint(sent)})
			sent++
		}
	}
	publish(20)
	waitFor(t, 10*time.Second, "first 20 events", func() bool { return len(f.readEvents("ehns-two", "eh")) == 20 })

	f.unassign(assignment)
	publish(30)
	waitFor(t, 10*time.Second, "unhealthy endpoint", func() bool { return f.health("hubrole", "ep1").Status == engine.StatusUnhealthy })
	h := f.health("hubrole", "ep1")
	want := "401 from https://ehns-two.servicebus." + suffix + "/eh: Unauthorized access. 'Send' claim(s) are required"
	if !strings.HasPrefix(h.LastKnownError, want) {
		t.Fatalf("last error %q, want prefix %q", h.LastKnownError, want)
	}
	if got := len(f.readEvents("ehns-two", "eh")); got != 20 {
		t.Fatalf("%d events while the role is missing", got)
	}
	if f.pending("hubrole", "ep1") == 0 {
		t.Fatal("nothing is kept for the failing endpoint")
	}
	publish(10) // still accepted while unhealthy

	f.assign(p, roleEventHubsSender, ehID)
	waitFor(t, 15*time.Second, "all 60 events", func() bool { return len(f.readEvents("ehns-two", "eh")) >= 60 })
	events := f.readEvents("ehns-two", "eh")
	seen := map[int]bool{}
	last := map[string]int{}
	for _, ev := range events {
		var i int
		fmt.Sscanf(string(ev.Body), `{"i":%d}`, &i)
		if seen[i] {
			continue // a duplicate within the at-least-once window
		}
		seen[i] = true
		if l, ok := last[ev.PartitionKey]; ok && i < l {
			t.Fatalf("device %s: %d delivered after %d", ev.PartitionKey, i, l)
		}
		last[ev.PartitionKey] = i
	}
	if len(seen) != 60 {
		t.Fatalf("%d distinct messages delivered, want 60", len(seen))
	}
	waitFor(t, 5*time.Second, "healthy again", func() bool { return f.health("hubrole", "ep1").Status == engine.StatusHealthy })
	// The refusal was a role, not the token: one token request in all.
	if got := f.engine.TokenRequests(f.hubID("hubrole"), "", engine.AudienceEventHubs); got != 1 {
		t.Fatalf("token requests = %d, want 1", got)
	}
}
