package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

// baseTime has microsecond precision, the finest PostgreSQL keeps, so that
// times survive every backend unchanged.
var baseTime = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

func testOperation(id string, startSecond int) store.Operation {
	return store.Operation{
		ID:         id,
		ResourceID: hubID("sub", "rg", "hub"),
		Kind:       "put",
		Status:     "Accepted",
		StartTime:  baseTime.Add(time.Duration(startSecond) * time.Second),
		Input:      json.RawMessage(`{"sku":"S1"}`),
	}
}

func checkOperation(t *testing.T, got, want store.Operation) {
	t.Helper()
	if got.ID != want.ID || got.ResourceID != want.ResourceID || got.Kind != want.Kind || got.Status != want.Status {
		t.Errorf("operation = %+v, want %+v", got, want)
	}
	if !got.StartTime.Equal(want.StartTime) || !got.EndTime.Equal(want.EndTime) {
		t.Errorf("operation %s times = %v..%v, want %v..%v", want.ID, got.StartTime, got.EndTime, want.StartTime, want.EndTime)
	}
	checkJSON(t, "Error of "+want.ID, got.Error, string(want.Error))
	checkJSON(t, "Input of "+want.ID, got.Input, string(want.Input))
	if got.Owner != want.Owner || !got.LeaseUntil.Equal(want.LeaseUntil) {
		t.Errorf("operation %s lease = %q until %v, want %q until %v", want.ID, got.Owner, got.LeaseUntil, want.Owner, want.LeaseUntil)
	}
}

func runOperations(t *testing.T, newBackend func(t *testing.T) Backend) {
	runTests(t, newBackend, []test{
		{"CreateThenGet", testOperationCreateGet},
		{"GetMissing", testOperationGetMissing},
		{"CreateTaken", testOperationCreateTaken},
		{"Update", testOperationUpdate},
		{"UpdaterErrorAborts", testOperationUpdaterError},
		{"ConcurrentUpdateLosesNoUpdate", testOperationConcurrentUpdate},
		{"ListUnfinished", testListUnfinished},
	})
}

func testOperationCreateGet(t *testing.T, s store.Store) {
	ctx, ops := t.Context(), s.Operations()
	want := testOperation("op-1", 0)
	if err := ops.Create(ctx, want); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := ops.Get(ctx, want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkOperation(t, got, want)
	if !got.EndTime.IsZero() || got.Error != nil {
		t.Errorf("unfinished operation has EndTime %v, Error %s; want zero, nil", got.EndTime, got.Error)
	}
}

func testOperationGetMissing(t *testing.T, s store.Store) {
	ctx, ops := t.Context(), s.Operations()
	if _, err := ops.Get(ctx, "none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want ErrNotFound", err)
	}
	_, err := ops.Update(ctx, "none", func(*store.Operation) error { return nil })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update missing: err = %v, want ErrNotFound", err)
	}
}

func testOperationCreateTaken(t *testing.T, s store.Store) {
	ctx, ops := t.Context(), s.Operations()
	first := testOperation("op-1", 0)
	if err := ops.Create(ctx, first); err != nil {
		t.Fatalf("Create: %v", err)
	}
	second := testOperation("op-1", 5)
	second.Kind = "delete"
	if err := ops.Create(ctx, second); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("Create taken id: err = %v, want ErrAlreadyExists", err)
	}
	got, err := ops.Get(ctx, first.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkOperation(t, got, first)
}

func testOperationUpdate(t *testing.T, s store.Store) {
	ctx, ops := t.Context(), s.Operations()
	op := testOperation("op-1", 0)
	if err := ops.Create(ctx, op); err != nil {
		t.Fatalf("Create: %v", err)
	}
	end := baseTime.Add(time.Minute)
	updated, err := ops.Update(ctx, op.ID, func(current *store.Operation) error {
		checkOperation(t, *current, op)
		current.Status = "Failed"
		current.EndTime = end
		current.Owner, current.LeaseUntil = "node-a", end.Add(30*time.Second)
		current.Error = json.RawMessage(`{"code":"Conflict","message":"taken"}`)
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want := op
	want.Status, want.EndTime, want.Error = "Failed", end, json.RawMessage(`{"code":"Conflict","message":"taken"}`)
	want.Owner, want.LeaseUntil = "node-a", end.Add(30*time.Second)
	checkOperation(t, updated, want)
	got, err := ops.Get(ctx, op.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkOperation(t, got, want)
}

func testOperationUpdaterError(t *testing.T, s store.Store) {
	ctx, ops := t.Context(), s.Operations()
	op := testOperation("op-1", 0)
	if err := ops.Create(ctx, op); err != nil {
		t.Fatalf("Create: %v", err)
	}
	_, err := ops.Update(ctx, op.ID, func(current *store.Operation) error {
		current.Status = "Succeeded"
		return errUpdater
	})
	if !errors.Is(err, errUpdater) {
		t.Fatalf("Update with failing updater: err = %v, want the updater's error", err)
	}
	got, err := ops.Get(ctx, op.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkOperation(t, got, op)
}

func testOperationConcurrentUpdate(t *testing.T, s store.Store) {
	ctx, ops := t.Context(), s.Operations()
	op := testOperation("op-1", 0)
	op.Input = json.RawMessage(`{"n":0}`)
	if err := ops.Create(ctx, op); err != nil {
		t.Fatalf("Create: %v", err)
	}
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			_, err := ops.Update(ctx, op.ID, func(current *store.Operation) error {
				var in struct{ N int }
				if err := json.Unmarshal(current.Input, &in); err != nil {
					return err
				}
				current.Input = json.RawMessage(fmt.Sprintf(`{"n":%d}`, in.N+1))
				return nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	got, err := ops.Get(ctx, op.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkJSON(t, "Input after concurrent updates", got.Input, fmt.Sprintf(`{"n":%d}`, concurrency))
}

func testListUnfinished(t *testing.T, s store.Store) {
	ctx, ops := t.Context(), s.Operations()
	if got, err := ops.ListUnfinished(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListUnfinished on an empty store = %v, %v; want none", got, err)
	}
	ids := func(list []store.Operation) []string {
		out := make([]string, len(list))
		for i, op := range list {
			out[i] = op.ID
		}
		return out
	}
	// Created out of order so that insertion order cannot pass for age.
	for _, op := range []struct {
		id     string
		start  int
		status string
	}{
		{"op-c", 3, "Running"},
		{"op-a", 1, "Accepted"},
		{"op-done", 0, "Succeeded"},
		{"op-b", 2, "Running"},
		{"op-failed", 1, "Failed"},
		{"op-canceled", 2, "Canceled"},
	} {
		o := testOperation(op.id, op.start)
		o.Status = op.status
		if o.Terminal() {
			o.EndTime = o.StartTime.Add(time.Second)
		}
		if err := ops.Create(ctx, o); err != nil {
			t.Fatalf("Create %s: %v", op.id, err)
		}
	}
	got, err := ops.ListUnfinished(ctx)
	if err != nil {
		t.Fatalf("ListUnfinished: %v", err)
	}
	if want := []string{"op-a", "op-b", "op-c"}; !slices.Equal(ids(got), want) {
		t.Fatalf("ListUnfinished = %v, want %v (oldest first)", ids(got), want)
	}
	checkOperation(t, got[0], store.Operation{
		ID: "op-a", ResourceID: hubID("sub", "rg", "hub"), Kind: "put", Status: "Accepted",
		StartTime: baseTime.Add(time.Second), Input: json.RawMessage(`{"sku":"S1"}`),
	})

	if _, err := ops.Update(ctx, "op-b", func(op *store.Operation) error {
		op.Status, op.EndTime = "Succeeded", baseTime.Add(time.Hour)
		return nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	got, err = ops.ListUnfinished(ctx)
	if err != nil {
		t.Fatalf("ListUnfinished: %v", err)
	}
	if want := []string{"op-a", "op-c"}; !slices.Equal(ids(got), want) {
		t.Errorf("ListUnfinished after op-b succeeded = %v, want %v", ids(got), want)
	}
}
