package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
)

// Backend opens a store over one database. Every call returns a new Store
// over the same data, which is how the suite checks that data outlives
// Close. A Backend reports failure to open through the test that made it.
type Backend func() store.Store

// Run runs the conformance suite. newBackend is called once per subtest,
// with that subtest's t, and must return a Backend over fresh, empty data
// that it removes with t.Cleanup. Subtests run in parallel.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	t.Run("Resources", func(t *testing.T) { runResources(t, newBackend) })
	t.Run("Operations", func(t *testing.T) { runOperations(t, newBackend) })
	t.Run("Settings", func(t *testing.T) { runSettings(t, newBackend) })
	t.Run("Principals", func(t *testing.T) { runPrincipals(t, newBackend) })
	t.Run("Devices", func(t *testing.T) { runDevices(t, newBackend) })
	t.Run("Store", func(t *testing.T) {
		t.Run("Ping", func(t *testing.T) {
			t.Parallel()
			if err := open(t, newBackend(t)).Ping(t.Context()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		})
		t.Run("SurvivesReopen", func(t *testing.T) {
			t.Parallel()
			testSurvivesReopen(t, newBackend(t))
		})
	})
}

type test struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// runTests runs each test in parallel on a store of its own.
func runTests(t *testing.T, newBackend func(t *testing.T) Backend, tests []test) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t, newBackend(t)))
		})
	}
}

// open opens a store that is closed when the test ends.
func open(t *testing.T, b Backend) store.Store {
	t.Helper()
	s := b()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testSurvivesReopen(t *testing.T, b Backend) {
	ctx := t.Context()
	first := b()
	res := mustPut(t, first.Resources(), testResource(hubID("sub", "rg", "hub"), `{"sku":"S1"}`))
	op := testOperation("op-reopen", 1)
	if err := first.Operations().Create(ctx, op); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := first.Settings().Set(ctx, "tenant", json.RawMessage(`"t-1"`)); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, err := first.Settings().Update(ctx, "keys", func(json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`["k1"]`), nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	sp := mustCreatePrincipal(t, first.Principals(), servicePrincipal("oid-sp", "app-1", "builder"))
	alice := mustCreatePrincipal(t, first.Principals(), user("oid-alice", "Alice@contoso.com"))
	device := mustCreateDevice(t, first.Devices(), testDevice(testHub, "dev"))
	module := mustCreateDevice(t, first.Devices(), testModule(testHub, "dev", "mod"))
	if errs, err := first.Devices().PutMany(ctx, testHub, []store.DeviceKey{{DeviceID: "imported"}},
		func(int, *store.Device) (*store.Device, error) {
			d := testDevice(testHub, "imported")
			d.Enabled = false
			return &d, nil
		}); err != nil || errs[0] != nil {
		t.Fatalf("PutMany = %v, %v", errs, err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	second := open(t, b)
	got, err := second.Resources().Get(ctx, res.ID)
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	checkResource(t, got, res)
	gotOp, err := second.Operations().Get(ctx, op.ID)
	if err != nil {
		t.Fatalf("Get operation after reopen: %v", err)
	}
	checkOperation(t, gotOp, op)
	value, err := second.Settings().Get(ctx, "tenant")
	if err != nil {
		t.Fatalf("Get setting after reopen: %v", err)
	}
	checkJSON(t, "setting", value, `"t-1"`)
	value, err = second.Settings().Get(ctx, "keys")
	if err != nil {
		t.Fatalf("Get updated setting after reopen: %v", err)
	}
	checkJSON(t, "updated setting", value, `["k1"]`)

	// Reads by every index, and the unique indexes still hold.
	ps := second.Principals()
	for what, get := range map[string]func() (store.Principal, error){
		"Get":        func() (store.Principal, error) { return ps.Get(ctx, sp.ObjectID) },
		"GetByAppID": func() (store.Principal, error) { return ps.GetByAppID(ctx, sp.AppID) },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s after reopen: %v", what, err)
		}
		checkPrincipal(t, got, sp)
	}
	gotUser, err := ps.GetUser(ctx, "alice@CONTOSO.com")
	if err != nil {
		t.Fatalf("GetUser after reopen: %v", err)
	}
	checkPrincipal(t, gotUser, alice)
	if err := ps.Create(ctx, user("oid-other", "ALICE@contoso.com")); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("Create with a taken user name after reopen: err = %v, want ErrAlreadyExists", err)
	}

	ds := second.Devices()
	for _, want := range []store.Device{device, module} {
		got, err := ds.Get(ctx, testHub, want.DeviceID, want.ModuleID)
		if err != nil {
			t.Fatalf("Get %s after reopen: %v", entryName(want), err)
		}
		checkDevice(t, got, want)
	}
	checkEntries(t, "devices after reopen", mustList(t, ds, store.DeviceFilter{Hub: testHub}), []string{"dev", "imported"})
	if c, err := ds.Count(ctx, testHub); err != nil || c != (store.DeviceCounts{Total: 2, Enabled: 1, Disabled: 1}) {
		t.Errorf("Count after reopen = %+v, %v; want 2 devices, 1 enabled", c, err)
	}
	if _, err := ds.Create(ctx, testDevice(testHub, "dev")); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("Create of a stored device after reopen: err = %v, want ErrAlreadyExists", err)
	}
}

// checkJSON compares JSON documents by meaning: the contract keeps documents,
// not their spelling.
func checkJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	if !jsonEqual(got, json.RawMessage(want)) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}
