package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
)

func runSettings(t *testing.T, newBackend func(t *testing.T) Backend) {
	runTests(t, newBackend, []test{
		{"GetMissing", testSettingGetMissing},
		{"SetThenGet", testSettingSetGet},
		{"SetIfAbsent", testSetIfAbsent},
		{"SetIfAbsentRace", testSetIfAbsentRace},
	})
}

func testSettingGetMissing(t *testing.T, s store.Store) {
	if _, err := s.Settings().Get(t.Context(), "tenant"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
	}
}

func testSettingSetGet(t *testing.T, s store.Store) {
	ctx, st := t.Context(), s.Settings()
	for _, value := range []string{`{"id":"t-1"}`, `{"id":"t-2","extra":[1,2]}`} {
		if err := st.Set(ctx, "tenant", json.RawMessage(value)); err != nil {
			t.Fatalf("Set: %v", err)
		}
		got, err := st.Get(ctx, "tenant")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		checkJSON(t, "setting", got, value)
	}
	if _, err := st.Get(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of another key: err = %v, want ErrNotFound", err)
	}
}

func testSetIfAbsent(t *testing.T, s store.Store) {
	ctx, st := t.Context(), s.Settings()
	got, err := st.SetIfAbsent(ctx, "tenant", json.RawMessage(`"first"`))
	if err != nil {
		t.Fatalf("SetIfAbsent on absent key: %v", err)
	}
	checkJSON(t, "SetIfAbsent on absent key", got, `"first"`)
	got, err = st.SetIfAbsent(ctx, "tenant", json.RawMessage(`"second"`))
	if err != nil {
		t.Fatalf("SetIfAbsent on set key: %v", err)
	}
	checkJSON(t, "SetIfAbsent on set key", got, `"first"`)
	got, err = st.Get(ctx, "tenant")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkJSON(t, "setting after SetIfAbsent", got, `"first"`)
}

// testSetIfAbsentRace is the first start of several nodes at once: they must
// all settle on one tenant id.
func testSetIfAbsentRace(t *testing.T, s store.Store) {
	ctx, st := t.Context(), s.Settings()
	results := make([]json.RawMessage, concurrency)
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Go(func() {
			got, err := st.SetIfAbsent(ctx, "tenant", json.RawMessage(fmt.Sprintf(`"node-%d"`, i)))
			if err != nil {
				t.Errorf("SetIfAbsent: %v", err)
			}
			results[i] = got
		})
	}
	wg.Wait()
	stored, err := st.Get(ctx, "tenant")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	for i, got := range results {
		checkJSON(t, fmt.Sprintf("SetIfAbsent result of caller %d", i), got, string(stored))
	}
}
