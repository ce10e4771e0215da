package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
		{"UpdateCreatesThenChanges", testSettingUpdate},
		{"UpdaterErrorAborts", testSettingUpdaterError},
		{"ConcurrentUpdateLosesNoUpdate", testSettingConcurrentUpdate},
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

func testSettingUpdate(t *testing.T, s store.Store) {
	ctx, st := t.Context(), s.Settings()
	got, err := st.Update(ctx, "keys", func(current json.RawMessage) (json.RawMessage, error) {
		if current != nil {
			t.Errorf("updater got %s for an unset key, want nil", current)
		}
		return json.RawMessage(`{"current":"k1"}`), nil
	})
	if err != nil {
		t.Fatalf("Update of an unset key: %v", err)
	}
	checkJSON(t, "Update of an unset key", got, `{"current":"k1"}`)

	got, err = st.Update(ctx, "keys", func(current json.RawMessage) (json.RawMessage, error) {
		checkJSON(t, "updater's current value", current, `{"current":"k1"}`)
		return json.RawMessage(`{"current":"k2","previous":"k1"}`), nil
	})
	if err != nil {
		t.Fatalf("Update of a set key: %v", err)
	}
	checkJSON(t, "Update of a set key", got, `{"current":"k2","previous":"k1"}`)
	stored, err := st.Get(ctx, "keys")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkJSON(t, "setting after Update", stored, `{"current":"k2","previous":"k1"}`)

	// A value written by Set is what the next Update sees.
	if err := st.Set(ctx, "keys", json.RawMessage(`{"current":"k3"}`)); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, err := st.Update(ctx, "keys", func(current json.RawMessage) (json.RawMessage, error) {
		checkJSON(t, "updater's current value after Set", current, `{"current":"k3"}`)
		return current, nil
	}); err != nil {
		t.Fatalf("Update after Set: %v", err)
	}
	if _, err := st.Get(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of another key: err = %v, want ErrNotFound", err)
	}
}

func testSettingUpdaterError(t *testing.T, s store.Store) {
	ctx, st := t.Context(), s.Settings()
	_, err := st.Update(ctx, "keys", func(json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`"half-done"`), errUpdater
	})
	if !errors.Is(err, errUpdater) {
		t.Fatalf("Update of an unset key with failing updater: err = %v, want the updater's error", err)
	}
	if _, err := st.Get(ctx, "keys"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after aborted Update of an unset key: err = %v, want ErrNotFound", err)
	}
	// The aborted Update claimed nothing: a first start still sets the key.
	got, err := st.SetIfAbsent(ctx, "keys", json.RawMessage(`"k1"`))
	if err != nil {
		t.Fatalf("SetIfAbsent after aborted Update: %v", err)
	}
	checkJSON(t, "SetIfAbsent after aborted Update", got, `"k1"`)

	_, err = st.Update(ctx, "keys", func(json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`"k2"`), fmt.Errorf("rotation: %w", store.ErrPreconditionFailed)
	})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("Update of a set key with failing updater: err = %v, want ErrPreconditionFailed passed through", err)
	}
	stored, err := st.Get(ctx, "keys")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkJSON(t, "setting after aborted Update", stored, `"k1"`)
}

// testSettingConcurrentUpdate is several nodes rotating a shared signing key
// at once, starting from an unset key so that the first writes also race to
// create it: every append must survive.
func testSettingConcurrentUpdate(t *testing.T, s store.Store) {
	ctx, st := t.Context(), s.Settings()
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Go(func() {
			_, err := st.Update(ctx, "keys", func(current json.RawMessage) (json.RawMessage, error) {
				var list []int
				if current != nil {
					if err := json.Unmarshal(current, &list); err != nil {
						return nil, err
					}
				}
				return json.Marshal(append(list, i))
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	stored, err := st.Get(ctx, "keys")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	var list []int
	if err := json.Unmarshal(stored, &list); err != nil {
		t.Fatalf("stored value %s: %v", stored, err)
	}
	slices.Sort(list)
	want := make([]int, concurrency)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(list, want) {
		t.Errorf("appended values = %v after %d concurrent updates, want each of %v once", list, concurrency, want)
	}
}
