package arm

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

// TestOperationLeases: two nodes' runners share the operations table; the
// one holding a live lease keeps the operation, the other takes it over
// only once the lease lapsed, a release hands it back at once, and a
// finished operation is claimed by nobody.
func TestOperationLeases(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: filepath.Join(t.TempDir(), "o.db")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := &Service{store: st, log: slog.New(slog.DiscardHandler)}
	a := NewOperationRunner(svc, "", svc.log)
	b := NewOperationRunner(svc, "", svc.log)
	op := store.Operation{ID: "op-1", ResourceID: "/subscriptions/s/resourceGroups/rg", Kind: opPut, Status: "Accepted", StartTime: time.Now()}
	if err := st.Operations().Create(ctx, op); err != nil {
		t.Fatal(err)
	}
	claim := func(r *OperationRunner) bool {
		t.Helper()
		_, ok, err := r.claim(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !claim(a) || claim(b) {
		t.Fatal("a live lease must keep the operation with its holder")
	}
	if !claim(a) {
		t.Fatal("the holder renews its own lease")
	}
	// a stops renewing (its node died): the lease lapses.
	if _, err := st.Operations().Update(ctx, op.ID, func(o *store.Operation) error {
		o.LeaseUntil = time.Now().Add(-time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !claim(b) || claim(a) {
		t.Fatal("a lapsed lease goes to the node that sweeps first, and stays with it")
	}
	a.release(ctx, op.ID) // not a's: nothing changes
	if got, _ := st.Operations().Get(ctx, op.ID); got.Owner != b.node {
		t.Fatalf("owner after a foreign release: %q", got.Owner)
	}
	b.release(ctx, op.ID)
	if !claim(a) {
		t.Fatal("a released operation is claimable at once")
	}
	if _, err := st.Operations().Update(ctx, op.ID, func(o *store.Operation) error {
		o.Status, o.Owner, o.LeaseUntil = "Succeeded", "", time.Time{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if claim(a) || claim(b) {
		t.Fatal("a finished operation is claimed")
	}
}

// TestSweepLeavesFreshOperations: a sweep does not start an operation whose
// PUT may still be writing the resource (recorded, never claimed, young),
// but does resume one left unclaimed for two lease periods, its own node's,
// and one whose lease lapsed.
func TestSweepLeavesFreshOperations(t *testing.T) {
	svc := &Service{}
	r := NewOperationRunner(svc, "node-a", slog.New(slog.DiscardHandler))
	svc.created(&store.Operation{ID: "in-flight"})
	now := time.Now()
	for _, c := range []struct {
		name string
		op   store.Operation
		want bool
	}{
		{"fresh, unclaimed", store.Operation{StartTime: now.Add(-time.Second)}, false},
		{"old, unclaimed", store.Operation{StartTime: now.Add(-2 * r.ttl)}, true},
		{"this node's", store.Operation{Owner: "node-a", LeaseUntil: now.Add(time.Minute), StartTime: now}, true},
		{"this node's, PUT in flight", store.Operation{ID: "in-flight", Owner: "node-a", LeaseUntil: now.Add(time.Minute), StartTime: now}, false},
		{"a live node's", store.Operation{Owner: "node-b", LeaseUntil: now.Add(time.Second), StartTime: now.Add(-time.Hour)}, false},
		{"a dead node's", store.Operation{Owner: "node-b", LeaseUntil: now.Add(-time.Second), StartTime: now}, true},
	} {
		if got := r.sweepable(c.op, now); got != c.want {
			t.Errorf("%s: sweepable = %v, want %v", c.name, got, c.want)
		}
	}
}
