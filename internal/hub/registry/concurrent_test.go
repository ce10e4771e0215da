package registry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/outpost-iot/outpost/internal/hub/registry"
)

// TestConcurrentCreates: every distinct id is created once, and of racing
// creates of one id exactly one wins (the others get DeviceAlreadyExists).
func TestConcurrentCreates(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	created := make([]bool, n)
	etags := make([]string, n)
	for i := range n {
		wg.Go(func() {
			// Every fourth caller races for the same id.
			id := fmt.Sprintf("dev-%d", i)
			if i%4 == 0 {
				id = "contested"
			}
			got, ok, err := s.PutIdentity(ctx, "hub1", id, "", registry.Identity{}, "")
			errs[i], created[i], etags[i] = err, ok, got.ETag
		})
	}
	wg.Wait()
	winners := 0
	for i := range n {
		switch {
		case i%4 != 0 && (errs[i] != nil || !created[i] || etags[i] == ""):
			t.Fatalf("create dev-%d: created=%v etag=%q err=%v", i, created[i], etags[i], errs[i])
		case i%4 == 0 && errs[i] == nil:
			winners++
		case i%4 == 0 && code(errs[i]) != "DeviceAlreadyExists":
			t.Fatalf("losing create of 'contested': %v", errs[i])
		}
	}
	if winners != 1 {
		t.Fatalf("%d creates of 'contested' succeeded, want 1", winners)
	}
	stats, err := s.Statistics(ctx, "hub1")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(n - n/4 + 1); stats.TotalDeviceCount != want {
		t.Fatalf("%d devices stored, want %d", stats.TotalDeviceCount, want)
	}
}
