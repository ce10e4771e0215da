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
