package engine

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

// fakeTokens mints unsigned JWT-shaped tokens valid for an hour.
type fakeTokens struct {
	now   func() time.Time
	mu    sync.Mutex
	calls int
}

func (f *fakeTokens) ManagedIdentityToken(_ context.Context, resourceID, userAssignedID, resource string) (string, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	claims := fmt.Sprintf(`{"aud":%q,"exp":%d}`, resource, f.now().Add(time.Hour).Unix())
	return "e30." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".sig", nil
}

// TestTokenCacheOneRequestPerHour: an hour-long token is requested once per
// (identity, audience) and refreshed only within the margin before exp.
func TestTokenCacheOneRequestPerHour(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	src := &fakeTokens{now: clock}
	c := newTokenCache(src, clock, 5*time.Minute)
	hub := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/h"
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, aud := range []string{AudienceEventHubs, AudienceStorage} {
				if _, err := c.token(context.Background(), hub, "", aud); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for step := 0; step < 54; step++ { // a send a minute for 54 minutes
		now = now.Add(time.Minute)
		if _, err := c.token(context.Background(), strings.ToUpper(hub), "", AudienceEventHubs); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.count(hub, "", AudienceEventHubs); got != 1 {
		t.Fatalf("event hubs token requests = %d, want 1", got)
	}
	if got := c.count(hub, "", AudienceStorage); got != 1 {
		t.Fatalf("storage token requests = %d, want 1", got)
	}
	now = now.Add(2 * time.Minute) // 56 min: inside the refresh margin
	if _, err := c.token(context.Background(), hub, "", AudienceEventHubs); err != nil {
		t.Fatal(err)
	}
	if got := c.count(hub, "", AudienceEventHubs); got != 2 {
		t.Fatalf("after the margin: %d requests, want 2", got)
	}
	// A refused token is dropped at most once a minute.
	c.invalidate(hub, "", AudienceEventHubs)
	_, _ = c.token(context.Background(), hub, "", AudienceEventHubs)
	if got := c.count(hub, "", AudienceEventHubs); got != 2 {
		t.Fatalf("a fresh token was dropped: %d requests", got)
	}
	if src.calls != 3 || c.total() != 3 {
		t.Fatalf("issuer calls %d, total %d", src.calls, c.total())
	}
}

func TestBlobNames(t *testing.T) {
	at := time.Date(2018, 10, 30, 10, 56, 12, 0, time.UTC)
	if got := blobName("{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}", "ContosoTestHub", 0, at); got != "ContosoTestHub/0/2018/10/30/10/56" {
		t.Fatal(got)
	}
	for in, want := range map[string]string{"a/b/07": "a/b/07_2", "a/b/07.json": "a/b/07_2.json", "a.b/07": "a.b/07_2"} {
		if got := suffixed(in, 2); got != want {
			t.Fatalf("suffixed(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQueueToken(t *testing.T) {
	for in, want := range map[string]string{"Ep-1": "ep-1", "a.b": "a_2eb", "a_2eb": "a_5f2eb"} {
		if got := queueToken(in); got != want {
			t.Fatalf("queueToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCompilePlan(t *testing.T) {
	body := `{"identity":{"type":"SystemAssigned"},"properties":{
	  "eventHubEndpoints":{"events":{"retentionTimeInDays":3,"partitionCount":8}},
	  "routing":{"endpoints":{
	    "eventHubs":[{"name":"eh","connectionString":"Endpoint=sb://ns.servicebus.x/;SharedAccessKeyName=send;SharedAccessKey=k==;EntityPath=e1"}],
	    "serviceBusQueues":[{"name":"bad","authenticationType":"identityBased","endpointUri":"sb://ns.servicebus.x"}],
	    "storageContainers":[{"name":"st","authenticationType":"identityBased","endpointUri":"https://127.0.0.1:10000/acct","containerName":"c"}],
	    "cosmosDBSqlContainers":[{"name":"cosmos"}]},
	   "routes":[{"name":"r","source":"TwinChangeEvents","condition":"true","endpointNames":["eh"],"isEnabled":true},
	             {"name":"x","source":"DeviceMessages","condition":"a = 'b'","endpointNames":["eh"],"isEnabled":true}],
	   "fallbackRoute":{"name":"$fallback","source":"DeviceMessages","condition":"true","endpointNames":["events"],"isEnabled":false},
	   "enrichments":[{"key":"k","value":"v","endpointNames":["eh","st"]}]}}}`
	p, err := compilePlan(store.Resource{ID: "/x/IotHubs/h", Name: "h", Body: []byte(body)}, constantConditions)
	if err != nil {
		t.Fatal(err)
	}
	if p.Partitions != 8 || p.Retention != 72*time.Hour || p.fallback != nil {
		t.Fatalf("plan %+v", p)
	}
	eh := p.Endpoints["eh"]
	if eh.EntityURL != "https://ns.servicebus.x/e1" || eh.KeyName != "send" || eh.Key != "k==" || len(eh.Enrichments) != 1 {
		t.Fatalf("eh %+v", eh)
	}
	st := p.Endpoints["st"]
	if st.ServiceURL != "https://127.0.0.1:10000/acct/" || st.Account != "acct" || st.Encoding != "avro" || st.BatchFrequency != 300*time.Second {
		t.Fatalf("st %+v", st)
	}
	if p.Endpoints["bad"].problem == "" || p.Endpoints["cosmos"] != nil {
		t.Fatalf("endpoints %+v", p.Endpoints)
	}
	// The condition the constant compiler can't handle is reported, and
	// its route skipped.
	if len(p.routes[SourceTwinChangeEvents]) != 1 || len(p.routes[SourceDeviceMessages]) != 0 || len(p.Problems) != 2 {
		t.Fatalf("routes %+v problems %q", p.routes, p.Problems)
	}
}
