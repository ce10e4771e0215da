package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
)

// putMany runs PutMany and fails the test on a failure of the whole batch.
func putMany(t *testing.T, ds store.Devices, hub string, keys []store.DeviceKey, update func(i int, current *store.Device) (*store.Device, error)) []error {
	t.Helper()
	errs, err := ds.PutMany(t.Context(), hub, keys, update)
	if err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	if len(errs) != len(keys) {
		t.Fatalf("PutMany returned %d errors for %d entries", len(errs), len(keys))
	}
	return errs
}

func testPutManyMixed(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	keep := mustCreateDevice(t, ds, testDevice(testHub, "keep"))
	same := mustCreateDevice(t, ds, testDevice(testHub, "same"))
	mustCreateDevice(t, ds, testDevice(testHub, "gone"))
	mustCreateDevice(t, ds, testModule(testHub, "gone", "m1"))
	refused := mustCreateDevice(t, ds, testDevice(testHub, "refused"))
	parent := mustCreateDevice(t, ds, testDevice(testHub, "parent"))
	mustCreateDevice(t, ds, testModule(testHub, "parent", "old"))
	other := mustCreateDevice(t, ds, testDevice("hub-2", "new"))

	keys := []store.DeviceKey{
		{DeviceID: "new"},                     // 0 create
		{DeviceID: "keep"},                    // 1 twin update
		{DeviceID: "gone"},                    // 2 delete with modules
		{DeviceID: "refused"},                 // 3 updater error
		{DeviceID: "new", ModuleID: "m1"},     // 4 module of the device entry 0 created
		{DeviceID: "missing", ModuleID: "m1"}, // 5 module of a missing device
		{DeviceID: "parent", ModuleID: "old"}, // 6 module delete
		{DeviceID: "absent"},                  // 7 delete of nothing
		{DeviceID: ""},                        // 8 no device id
		{DeviceID: "same"},                    // 9 no change
		{DeviceID: "parent", ModuleID: "new"}, // 10 module of a stored device
		{DeviceID: "keep", ModuleID: "x"},     // 11 updater returns another key
	}
	wantCurrent := map[int]bool{1: true, 2: true, 3: true, 6: true, 9: true}
	var called []int
	errs := putMany(t, ds, testHub, keys, func(i int, current *store.Device) (*store.Device, error) {
		called = append(called, i)
		if (current != nil) != wantCurrent[i] {
			t.Errorf("entry %d (%v): current = %v, want present %v", i, keys[i], current, wantCurrent[i])
		}
		if current != nil && (current.DeviceID != keys[i].DeviceID || current.ModuleID != keys[i].ModuleID) {
			t.Errorf("entry %d (%v): current is %s", i, keys[i], entryName(*current))
		}
		switch i {
		case 0, 4, 5, 10:
			// Creates may leave the key to the store.
			d := testModule("", "", "")
			d.Twin = twinJSON(i)
			return &d, nil
		case 1:
			current.Twin = twinJSON(1)
			return current, nil
		case 3:
			current.Twin = twinJSON(3)
			return current, errUpdater
		case 9:
			return current, nil
		case 11:
			d := testModule(testHub, "keep", "y")
			return &d, nil
		}
		return nil, nil
	})
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11}; !slices.Equal(called, want) {
		t.Errorf("updater called for entries %v, want %v in order", called, want)
	}
	for i, err := range errs {
		switch i {
		case 3:
			if !errors.Is(err, errUpdater) {
				t.Errorf("entry 3: err = %v, want the updater's", err)
			}
		case 5:
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("entry 5 (module of a missing device): err = %v, want ErrNotFound", err)
			}
		case 8, 11:
			if err == nil {
				t.Errorf("entry %d (%v): err = nil, want an error", i, keys[i])
			}
		default:
			if err != nil {
				t.Errorf("entry %d (%v): %v", i, keys[i], err)
			}
		}
	}

	get := func(id, module string) (store.Device, error) { return ds.Get(ctx, testHub, id, module) }
	created, err := get("new", "")
	if err != nil {
		t.Fatalf("Get created device: %v", err)
	}
	checkDevice(t, created, store.Device{Hub: testHub, DeviceID: "new", Enabled: true, Identity: identityJSON("", "", "enabled"), Twin: twinJSON(0)})
	checkETags(t, created)
	for _, m := range []store.DeviceKey{{DeviceID: "new", ModuleID: "m1"}, {DeviceID: "parent", ModuleID: "new"}} {
		if _, err := get(m.DeviceID, m.ModuleID); err != nil {
			t.Errorf("Get created module %v: %v", m, err)
		}
	}
	got, err := get("keep", "")
	if err != nil {
		t.Fatalf("Get updated device: %v", err)
	}
	if got.ETag != keep.ETag || got.TwinETag == keep.TwinETag || twinCounter(&got) != 1 {
		t.Errorf("twin update in a batch: ETag %q -> %q, TwinETag %q -> %q, counter %d; want only the twin and its etag changed",
			keep.ETag, got.ETag, keep.TwinETag, got.TwinETag, twinCounter(&got))
	}
	for what, want := range map[string]store.Device{"refused": refused, "same": same, "parent": parent} {
		got, err := get(what, "")
		if err != nil {
			t.Fatalf("Get %s: %v", what, err)
		}
		checkDevice(t, got, want)
	}
	for _, k := range []store.DeviceKey{{DeviceID: "gone"}, {DeviceID: "gone", ModuleID: "m1"}, {DeviceID: "parent", ModuleID: "old"},
		{DeviceID: "missing", ModuleID: "m1"}, {DeviceID: "absent"}, {DeviceID: "keep", ModuleID: "x"}, {DeviceID: "keep", ModuleID: "y"}} {
		if _, err := get(k.DeviceID, k.ModuleID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get %v: err = %v, want ErrNotFound", k, err)
		}
	}
	got, err = ds.Get(ctx, "hub-2", "new", "")
	if err != nil {
		t.Fatalf("Get in another hub: %v", err)
	}
	checkDevice(t, got, other)
}

// testPutManyInOrder checks that entries apply one after another: each sees
// what the earlier ones did to its key and to its device.
func testPutManyInOrder(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	mustCreateDevice(t, ds, testDevice(testHub, "d2"))
	mustCreateDevice(t, ds, testModule(testHub, "d2", "stored"))

	d1, d1m := store.DeviceKey{DeviceID: "d1"}, store.DeviceKey{DeviceID: "d1", ModuleID: "m"}
	d2, d2m := store.DeviceKey{DeviceID: "d2"}, store.DeviceKey{DeviceID: "d2", ModuleID: "m"}
	steps := []struct {
		key     store.DeviceKey
		current int // the counter the entry must see; -1 for absent
		put     bool
		fails   bool
	}{
		{d1m, -1, true, true},   // 0: a module before its device
		{d1, -1, true, false},   // 1: create
		{d1m, -1, true, false},  // 2: a module after its device
		{d1, 1, true, false},    // 3: sees entry 1
		{d1m, 2, true, false},   // 4: sees entry 2
		{d1, 3, false, false},   // 5: delete, with the module
		{d1m, -1, true, true},   // 6: the module went with its device
		{d1, -1, true, false},   // 7: create again
		{d1m, -1, true, false},  // 8: a module of the new device
		{d1m, 8, true, false},   // 9: the same key again sees entry 8
		{d2m, -1, true, false},  // 10: a module of a stored device
		{d2, 0, false, false},   // 11: delete a stored device: stored modules go too
		{d2, -1, true, false},   // 12: create again
		{d2m, -1, false, false}, // 13: delete of nothing
		{d1, 7, false, false},   // 14: delete d1 and its module
		{d1, -1, true, false},   // 15: and create it once more
		{d2m, -1, true, false},  // 16: a module of the new d2
	}
	keys := make([]store.DeviceKey, len(steps))
	for i, st := range steps {
		keys[i] = st.key
	}
	errs := putMany(t, ds, testHub, keys, func(i int, current *store.Device) (*store.Device, error) {
		st := steps[i]
		got := -1
		if current != nil {
			got = twinCounter(current)
		}
		if got != st.current {
			t.Errorf("entry %d (%v): current counter %d, want %d", i, st.key, got, st.current)
		}
		if !st.put {
			return nil, nil
		}
		// Each entry writes its own index, so later entries can tell
		// which one they see.
		d := testModule(testHub, st.key.DeviceID, st.key.ModuleID)
		d.Twin = twinJSON(i)
		return &d, nil
	})
	for i, err := range errs {
		if steps[i].fails != (err != nil) {
			t.Errorf("entry %d (%v): err = %v, want failure %v", i, steps[i].key, err, steps[i].fails)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("entry %d (%v): err = %v, want ErrNotFound", i, steps[i].key, err)
		}
	}
	last := map[store.DeviceKey]int{}
	for i, st := range steps {
		switch {
		case st.fails:
		case st.put:
			last[st.key] = i
		default:
			delete(last, st.key)
			if st.key.ModuleID == "" {
				delete(last, store.DeviceKey{DeviceID: st.key.DeviceID, ModuleID: "m"})
			}
		}
	}
	for _, k := range []store.DeviceKey{d1, d1m, d2, d2m} {
		got, err := ds.Get(ctx, testHub, k.DeviceID, k.ModuleID)
		want, present := last[k]
		switch {
		case !present && !errors.Is(err, store.ErrNotFound):
			t.Errorf("Get %v: err = %v, want ErrNotFound", k, err)
		case present && err != nil:
			t.Errorf("Get %v: %v", k, err)
		case present && twinCounter(&got) != want:
			t.Errorf("Get %v: counter %d, want %d", k, twinCounter(&got), want)
		}
	}
	checkEntries(t, "modules of d2", mustList(t, ds, store.DeviceFilter{Hub: testHub, DeviceID: "d2", Modules: true}), []string{"d2/m"})
}

// testPutManyAtomic checks that a batch that fails as a whole leaves
// nothing behind, while an entry's error leaves the other entries' writes.
func testPutManyAtomic(t *testing.T, s store.Store) {
	ds := s.Devices()
	stored := mustCreateDevice(t, ds, testDevice(testHub, "stored"))
	keys := []store.DeviceKey{{DeviceID: "stored"}, {DeviceID: "new"}, {DeviceID: "new", ModuleID: "m"}, {DeviceID: "last"}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := ds.PutMany(ctx, testHub, keys, func(i int, current *store.Device) (*store.Device, error) {
		if i == len(keys)-1 {
			// The batch is abandoned after the other entries were
			// written in its transaction.
			cancel()
		}
		d := testModule(testHub, keys[i].DeviceID, keys[i].ModuleID)
		d.Twin = twinJSON(i + 1)
		return &d, nil
	})
	if err == nil {
		t.Fatalf("PutMany with its context canceled: err = nil, want an error")
	}
	got, err := ds.Get(t.Context(), testHub, "stored", "")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkDevice(t, got, stored)
	checkEntries(t, "devices after a failed batch", mustList(t, ds, store.DeviceFilter{Hub: testHub}), []string{"stored"})
	checkEntries(t, "modules after a failed batch", mustList(t, ds, store.DeviceFilter{Hub: testHub, Modules: true}), nil)

	// Entry errors are no batch failure: everything else commits.
	errs := putMany(t, ds, testHub, keys, func(i int, current *store.Device) (*store.Device, error) {
		if i == 0 {
			return nil, errUpdater
		}
		d := testModule(testHub, keys[i].DeviceID, keys[i].ModuleID)
		return &d, nil
	})
	if !errors.Is(errs[0], errUpdater) || errs[1] != nil || errs[2] != nil || errs[3] != nil {
		t.Errorf("errors = %v, want the updater's for entry 0 alone", errs)
	}
	checkEntries(t, "devices after a batch with a failed entry", mustList(t, ds, store.DeviceFilter{Hub: testHub}), []string{"last", "new", "stored"})
	checkEntries(t, "modules after a batch with a failed entry", mustList(t, ds, store.DeviceFilter{Hub: testHub, Modules: true}), []string{"new/m"})

	if errs, err := ds.PutMany(t.Context(), testHub, nil, nil); err != nil || len(errs) != 0 {
		t.Errorf("PutMany of no entries = %v, %v; want none", errs, err)
	}
}

// testPutManyConcurrent runs batches over the same keys, in opposite orders,
// from several goroutines: every increment must survive, whether the keys
// exist yet or not.
func testPutManyConcurrent(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	const (
		writers = 4
		rounds  = 5
		devices = 10
	)
	var keys []store.DeviceKey
	for i := range devices {
		id := fmt.Sprintf("dev-%02d", i)
		keys = append(keys, store.DeviceKey{DeviceID: id}, store.DeviceKey{DeviceID: id, ModuleID: "m"})
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			order := slices.Clone(keys)
			if w%2 == 1 {
				// Reversed, modules still after their devices.
				slices.Reverse(order)
				for i := 0; i < len(order); i += 2 {
					order[i], order[i+1] = order[i+1], order[i]
				}
			}
			for range rounds {
				errs, err := ds.PutMany(ctx, testHub, order, func(i int, current *store.Device) (*store.Device, error) {
					d := testModule(testHub, order[i].DeviceID, order[i].ModuleID)
					d.Twin = twinJSON(twinCounter(current) + 1)
					return &d, nil
				})
				if err != nil {
					t.Errorf("PutMany: %v", err)
					return
				}
				for i, err := range errs {
					if err != nil {
						t.Errorf("PutMany entry %v: %v", order[i], err)
					}
				}
			}
		})
	}
	wg.Wait()
	for _, k := range keys {
		got, err := ds.Get(ctx, testHub, k.DeviceID, k.ModuleID)
		if err != nil {
			t.Fatalf("Get %v: %v", k, err)
		}
		if n := twinCounter(&got); n != writers*rounds {
			t.Errorf("counter of %v = %d after %d increments: updates were lost", k, n, writers*rounds)
		}
	}
}

// testAfterBulkLoad runs the post-import maintenance on a registry a batch
// just filled, with a write in flight on another hub: it succeeds, and
// every entry reads back as written (maintenance changes how the engine
// keeps the rows, never what they hold).
func testAfterBulkLoad(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	keys := make([]store.DeviceKey, 200)
	for i := range keys {
		keys[i] = store.DeviceKey{DeviceID: fmt.Sprintf("bulk-%03d", i)}
	}
	putMany(t, ds, testHub, keys, func(i int, current *store.Device) (*store.Device, error) {
		d := testDevice(testHub, keys[i].DeviceID)
		d.Twin = twinJSON(i)
		return &d, nil
	})
	done := make(chan error, 1)
	go func() {
		_, err := ds.Create(ctx, testDevice("hub-2", "meanwhile"))
		done <- err
	}()
	if err := ds.AfterBulkLoad(ctx); err != nil {
		t.Fatalf("AfterBulkLoad: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a create during AfterBulkLoad: %v", err)
	}
	counts, err := ds.Count(ctx, testHub)
	if err != nil || counts.Total != int64(len(keys)) {
		t.Fatalf("Count after AfterBulkLoad = %+v, %v; want %d devices", counts, err, len(keys))
	}
	got, err := ds.Get(ctx, testHub, "bulk-123", "")
	if err != nil {
		t.Fatalf("Get after AfterBulkLoad: %v", err)
	}
	if string(got.Twin) != string(twinJSON(123)) {
		t.Errorf("twin after AfterBulkLoad = %s, want %s", got.Twin, twinJSON(123))
	}
}
