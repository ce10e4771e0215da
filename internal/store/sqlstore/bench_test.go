package sqlstore_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
	"github.com/outpost-iot/outpost/internal/testenv"
)

// Benchmarks measure, never assert: numbers vary with disks and servers.

func BenchmarkResourcePut(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		rs := s.Resources()
		i := 0
		for b.Loop() {
			r := benchResource(i % 100)
			if _, _, err := rs.Put(b.Context(), r.ID, func(*store.Resource) (store.Resource, error) { return r, nil }); err != nil {
				b.Fatalf("Put: %v", err)
			}
			i++
		}
	})
}

func BenchmarkResourceGet(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		ids := populate(b, s, 1000)
		rs := s.Resources()
		i := 0
		for b.Loop() {
			if _, err := rs.Get(b.Context(), ids[i%len(ids)]); err != nil {
				b.Fatalf("Get: %v", err)
			}
			i++
		}
	})
}

func BenchmarkResourceList(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		populate(b, s, 1000)
		rs := s.Resources()
		i := 0
		for b.Loop() {
			filter := store.ResourceFilter{Subscription: "bench", ResourceGroup: fmt.Sprintf("rg-%d", i%10), Limit: 50}
			if got, err := rs.List(b.Context(), filter); err != nil || len(got) != 50 {
				b.Fatalf("List = %d resources, %v; want 50", len(got), err)
			}
			i++
		}
	})
}

func forEachBackend(b *testing.B, run func(b *testing.B, s store.Store)) {
	b.Run("sqlite", func(b *testing.B) {
		run(b, openBench(b, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: filepath.Join(b.TempDir(), "outpost.db")}))
	})
	b.Run("postgres", func(b *testing.B) {
		run(b, openBench(b, sqlstore.Config{Driver: sqlstore.DriverPostgres, DSN: testenv.PostgresDSN(b)}))
	})
}

func openBench(b *testing.B, cfg sqlstore.Config) store.Store {
	s, err := sqlstore.Open(b.Context(), cfg, testLogger(b))
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchResource is resource i of ten resource groups; its body is the size
// of a typical IoT hub document.
func benchResource(i int) store.Resource {
	rg := fmt.Sprintf("rg-%d", i%10)
	name := fmt.Sprintf("hub-%04d", i)
	parent := "/subscriptions/bench/resourceGroups/" + rg
	body, _ := json.Marshal(map[string]any{
		"location": "westeurope",
		"sku":      map[string]any{"name": "S1", "capacity": 1},
		"properties": map[string]any{
			"hostName":          name + ".azure-devices.net",
			"provisioningState": "Succeeded",
			"eventHubEndpoints": map[string]any{"events": map[string]any{"partitionCount": 4, "retentionTimeInDays": 1}},
		},
	})
	return store.Resource{
		ID: parent + "/providers/Microsoft.Devices/IotHubs/" + name, Type: "Microsoft.Devices/IotHubs",
		Subscription: "bench", ResourceGroup: rg, ParentID: parent, Name: name, Body: body,
	}
}

func populate(b *testing.B, s store.Store, n int) []string {
	ids := make([]string, n)
	for i := range n {
		r := benchResource(i)
		if _, _, err := s.Resources().Put(b.Context(), r.ID, func(*store.Resource) (store.Resource, error) { return r, nil }); err != nil {
			b.Fatalf("Put: %v", err)
		}
		ids[i] = r.ID
	}
	return ids
}

// BenchmarkPrincipalGetByAppID is token issuance's lookup of the client, one
// caller at a time and, in Parallel, from as many goroutines as GOMAXPROCS.
func BenchmarkPrincipalGetByAppID(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		appIDs := populatePrincipals(b, s, 1000)
		ps := s.Principals()
		i := 0
		for b.Loop() {
			if _, err := ps.GetByAppID(b.Context(), appIDs[i%len(appIDs)]); err != nil {
				b.Fatalf("GetByAppID: %v", err)
			}
			i++
		}
	})
}

func BenchmarkPrincipalGetByAppIDParallel(b *testing.B) {
	forEachBackend(b, func(b *testing.B, s store.Store) {
		appIDs := populatePrincipals(b, s, 1000)
		ps := s.Principals()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := ps.GetByAppID(b.Context(), appIDs[i%len(appIDs)]); err != nil {
					b.Errorf("GetByAppID: %v", err)
					return
				}
				i += 7
			}
		})
	})
}

// populatePrincipals stores n principals — service principals and managed
// identities with app ids, and users without — and returns the app ids.
func populatePrincipals(b *testing.B, s store.Store, n int) []string {
	var appIDs []string
	for i := range n {
		p := store.Principal{
			ObjectID:    fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			Kind:        store.KindServicePrincipal,
			Name:        fmt.Sprintf("app-%d", i),
			Credentials: json.RawMessage(`{"secrets":[{"id":"s1","hash":"JDJhJDEwJHNvbWVzYWx0c29tZXNhbHRzb21laGFzaGhhc2hoYXNoaGFzaA=="}]}`),
		}
		switch i % 4 {
		case 1:
			p.Kind, p.Name, p.Credentials = store.KindUser, fmt.Sprintf("user%d@contoso.com", i), json.RawMessage(`{"passwordHash":"x"}`)
		case 2:
			p.Kind, p.ResourceID, p.Credentials = store.KindManagedIdentity, benchResource(i).ID, nil
		}
		if p.Kind != store.KindUser {
			p.AppID = fmt.Sprintf("11111111-0000-4000-8000-%012d", i)
			appIDs = append(appIDs, p.AppID)
		}
		if err := s.Principals().Create(b.Context(), p); err != nil {
			b.Fatalf("Create: %v", err)
		}
	}
	return appIDs
}
