package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

// TestDirectoryPeekFollowsChanges: Peek answers from what the directory
// holds and, once that was invalidated, picks up the change from a
// background reload — a hub whose routes now read device messages takes the
// router path.
func TestDirectoryPeekFollowsChanges(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/peekhub"
	put := func(routing string) {
		body := `{"properties":{"hostName":"peekhub.outpost.localhost","routing":` + routing + `}}`
		if _, _, err := st.Resources().Put(ctx, id, func(*store.Resource) (store.Resource, error) {
			return store.Resource{ID: id, Type: "Microsoft.Devices/IotHubs", Name: "peekhub", Body: []byte(body)}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(`{}`)
	d := hub.NewDirectory(st.Resources(), "outpost.localhost", "")
	// Not held yet: looked up at once.
	h, ok, err := d.Peek(ctx, "PeekHub")
	if err != nil || !ok || h.Path != telemetry.PathBuiltIn {
		t.Fatalf("first Peek: %+v %v %v", h, ok, err)
	}
	put(`{"routes":[{"name":"r","source":"DeviceMessages","condition":"true","endpointNames":["x"],"isEnabled":true}]}`)
	d.Invalidate()
	deadline := time.Now().Add(5 * time.Second)
	for h.Path != telemetry.PathRouter && time.Now().Before(deadline) {
		if h, ok, err = d.Peek(ctx, "peekhub"); err != nil || !ok {
			t.Fatalf("Peek: %v %v", ok, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if h.Path != telemetry.PathRouter {
		t.Fatal("Peek never saw the hub's new routes")
	}
	if _, ok, err := d.Peek(ctx, "nohub"); ok || err != nil {
		t.Errorf("Peek of an unknown hub: %v %v", ok, err)
	}
}
