package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/store"
)

const testHub = "hub-1"

func identityJSON(deviceID, moduleID, status string) json.RawMessage {
	doc, _ := json.Marshal(map[string]any{
		"deviceId": deviceID, "moduleId": moduleID, "status": status,
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": "cHJpbWFyeQ=="}},
	})
	return doc
}

func twinJSON(n int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"tags":{},"properties":{"desired":{"n":%d},"reported":{}}}`, n))
}

func testDevice(hub, deviceID string) store.Device {
	return store.Device{
		Hub: hub, DeviceID: deviceID, Enabled: true,
		Identity: identityJSON(deviceID, "", "enabled"), Twin: twinJSON(0),
	}
}

func testModule(hub, deviceID, moduleID string) store.Device {
	return store.Device{
		Hub: hub, DeviceID: deviceID, ModuleID: moduleID, Enabled: true,
		Identity: identityJSON(deviceID, moduleID, "enabled"), Twin: twinJSON(0),
	}
}

// twinCounter reads the desired property n that twinJSON writes.
func twinCounter(d *store.Device) int {
	if d == nil {
		return 0
	}
	var twin struct {
		Properties struct{ Desired struct{ N int } }
	}
	json.Unmarshal(d.Twin, &twin)
	return twin.Properties.Desired.N
}

func mustCreateDevice(t *testing.T, ds store.Devices, d store.Device) store.Device {
	t.Helper()
	stored, err := ds.Create(t.Context(), d)
	if err != nil {
		t.Fatalf("Create %s/%s: %v", d.DeviceID, d.ModuleID, err)
	}
	return stored
}

func checkDevice(t *testing.T, got, want store.Device) {
	t.Helper()
	name := want.DeviceID + "/" + want.ModuleID
	if got.Hub != store.Key(want.Hub) || got.DeviceID != want.DeviceID || got.ModuleID != want.ModuleID || got.Enabled != want.Enabled {
		t.Errorf("entry = %s/%s/%s enabled %v, want %s/%s/%s enabled %v", got.Hub, got.DeviceID, got.ModuleID, got.Enabled,
			store.Key(want.Hub), want.DeviceID, want.ModuleID, want.Enabled)
	}
	checkJSON(t, "Identity of "+name, got.Identity, string(want.Identity))
	checkJSON(t, "Twin of "+name, got.Twin, string(want.Twin))
	if want.ETag != "" && got.ETag != want.ETag {
		t.Errorf("ETag of %s = %q, want %q", name, got.ETag, want.ETag)
	}
	if want.TwinETag != "" && got.TwinETag != want.TwinETag {
		t.Errorf("TwinETag of %s = %q, want %q", name, got.TwinETag, want.TwinETag)
	}
	if !want.CreatedAt.IsZero() && !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt of %s = %v, want %v", name, got.CreatedAt, want.CreatedAt)
	}
	if !want.UpdatedAt.IsZero() && !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("UpdatedAt of %s = %v, want %v", name, got.UpdatedAt, want.UpdatedAt)
	}
}

// entryName names an entry as "device" or "device/module" in listings.
func entryName(d store.Device) string {
	if d.ModuleID == "" {
		return d.DeviceID
	}
	return d.DeviceID + "/" + d.ModuleID
}

func checkEntries(t *testing.T, what string, got []store.Device, want []string) {
	t.Helper()
	names := make([]string, len(got))
	for i, d := range got {
		names[i] = entryName(d)
	}
	if !slices.Equal(names, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, names, want)
	}
}

// listEntries lists what filter selects, as entry names.
func listEntries(t *testing.T, ds store.Devices, filter store.DeviceFilter) []string {
	t.Helper()
	list, err := ds.List(t.Context(), filter)
	if err != nil {
		t.Fatalf("List %+v: %v", filter, err)
	}
	names := make([]string, len(list))
	for i, d := range list {
		names[i] = entryName(d)
	}
	return names
}

func checkETags(t *testing.T, d store.Device) {
	t.Helper()
	for what, etag := range map[string]string{"ETag": d.ETag, "TwinETag": d.TwinETag} {
		if etag == "" || strings.Contains(etag, `"`) {
			t.Errorf("%s of %s = %q, want a non-empty value without quotes", what, entryName(d), etag)
		}
	}
}

func runDevices(t *testing.T, newBackend func(t *testing.T) Backend) {
	runTests(t, newBackend, []test{
		{"Missing", testDeviceMissing},
		{"CreateThenGet", testDeviceCreateGet},
		{"CreateTaken", testDeviceCreateTaken},
		{"IDsAreCaseSensitive", testDeviceIDCase},
		{"HubNamesIgnoreCase", testDeviceHubCase},
		{"ModulesNeedTheirDevice", testModulesNeedDevice},
		{"DeleteRemovesModules", testDeviceDeleteModules},
		{"ETagsChangeIndependently", testDeviceETags},
		{"UpdateCannotMoveEntry", testDeviceUpdateKeys},
		{"UpdaterErrorAborts", testDeviceUpdaterError},
		{"DeleteIfMatch", testDeviceDeleteIfMatch},
		{"ListFilters", testDeviceListFilters},
		{"ListPagesDevices", testDeviceListPages},
		{"ListPagesModules", testModuleListPages},
		{"Count", testDeviceCount},
		{"DeleteHubIsolatesHubs", testDeleteHub},
		{"ConcurrentUpdateLosesNoUpdate", testDeviceConcurrentUpdate},
		{"ConcurrentCreateCreatesOnce", testDeviceConcurrentCreate},
		{"ConcurrentModuleCreateAndDeviceDelete", testModuleCreateDeviceDeleteRace},
		{"PutManyMixedEntries", testPutManyMixed},
		{"PutManyEntriesApplyInOrder", testPutManyInOrder},
		{"PutManyIsOneTransaction", testPutManyAtomic},
		{"ConcurrentPutManyLosesNoUpdate", testPutManyConcurrent},
		{"AfterBulkLoadKeepsEverything", testAfterBulkLoad},
	})
}

func testDeviceMissing(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	if _, err := ds.Get(ctx, testHub, "none", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want ErrNotFound", err)
	}
	if _, err := ds.Update(ctx, testHub, "none", "", func(*store.Device) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update missing: err = %v, want ErrNotFound", err)
	}
	for _, ifMatch := range []string{"", "*", "etag"} {
		if err := ds.Delete(ctx, testHub, "none", "", ifMatch); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delete missing with If-Match %q: err = %v, want ErrNotFound", ifMatch, err)
		}
	}
	if _, err := ds.Create(ctx, testModule(testHub, "none", "m")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Create module of a missing device: err = %v, want ErrNotFound", err)
	}

	// A device is not found as a module of itself, nor a module as a device.
	mustCreateDevice(t, ds, testDevice(testHub, "d"))
	mustCreateDevice(t, ds, testModule(testHub, "d", "m"))
	if _, err := ds.Get(ctx, testHub, "m", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a module id as a device: err = %v, want ErrNotFound", err)
	}
	if _, err := ds.Get(ctx, testHub, "d", "d"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a device id as a module: err = %v, want ErrNotFound", err)
	}
	if _, err := ds.Get(ctx, "hub-2", "d", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get in another hub: err = %v, want ErrNotFound", err)
	}
	if err := ds.Delete(ctx, testHub, "d", "other", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete of a missing module: err = %v, want ErrNotFound", err)
	}
	if c, err := ds.Count(ctx, "hub-2"); err != nil || c != (store.DeviceCounts{}) {
		t.Errorf("Count of a hub without devices = %+v, %v; want zeros", c, err)
	}
	if list, err := ds.List(ctx, store.DeviceFilter{Hub: "hub-2"}); err != nil || len(list) != 0 {
		t.Errorf("List of a hub without devices = %v, %v; want none", list, err)
	}
}

func testDeviceCreateGet(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	before := time.Now().Add(-time.Second)
	d := testDevice(testHub, "dev-1")
	// The backend owns these.
	d.ETag, d.TwinETag, d.CreatedAt = "mine", "mine too", time.Unix(1, 0)
	created, err := ds.Create(ctx, d)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	d.ETag, d.TwinETag, d.CreatedAt = "", "", time.Time{}
	checkDevice(t, created, d)
	checkETags(t, created)
	if created.ETag == "mine" || created.TwinETag == "mine too" {
		t.Errorf("Create kept the caller's etags: %q, %q", created.ETag, created.TwinETag)
	}
	if created.CreatedAt.Before(before) || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v; want equal and recent", created.CreatedAt, created.UpdatedAt)
	}
	got, err := ds.Get(ctx, testHub, "dev-1", "")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkDevice(t, got, created)

	// Disabled entries and entries without documents round-trip too.
	m := store.Device{Hub: testHub, DeviceID: "dev-1", ModuleID: "$edgeAgent", Identity: identityJSON("dev-1", "$edgeAgent", "disabled")}
	createdModule := mustCreateDevice(t, ds, m)
	checkETags(t, createdModule)
	got, err = ds.Get(ctx, testHub, "dev-1", "$edgeAgent")
	if err != nil {
		t.Fatalf("Get module: %v", err)
	}
	checkDevice(t, got, createdModule)
	if got.Twin != nil || got.Enabled {
		t.Errorf("module = enabled %v, twin %s; want disabled, nil as created", got.Enabled, got.Twin)
	}
}

func testDeviceCreateTaken(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	dev := mustCreateDevice(t, ds, testDevice(testHub, "dev"))
	mod := mustCreateDevice(t, ds, testModule(testHub, "dev", "mod"))
	for _, d := range []store.Device{testDevice(testHub, "dev"), testModule(testHub, "dev", "mod")} {
		d.Twin = twinJSON(7)
		if _, err := ds.Create(ctx, d); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("Create of taken %s: err = %v, want ErrAlreadyExists", entryName(d), err)
		}
	}
	for _, want := range []store.Device{dev, mod} {
		got, err := ds.Get(ctx, testHub, want.DeviceID, want.ModuleID)
		if err != nil {
			t.Fatalf("Get %s: %v", entryName(want), err)
		}
		checkDevice(t, got, want)
	}
	// The same ids are free in another hub.
	mustCreateDevice(t, ds, testDevice("hub-2", "dev"))
	mustCreateDevice(t, ds, testModule("hub-2", "dev", "mod"))
}

func testDeviceIDCase(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	upper := testDevice(testHub, "Dev1")
	upper.Twin = twinJSON(1)
	lower := testDevice(testHub, "dev1")
	lower.Twin = twinJSON(2)
	upper = mustCreateDevice(t, ds, upper)
	lower = mustCreateDevice(t, ds, lower)
	mustCreateDevice(t, ds, testModule(testHub, "Dev1", "Mod"))
	mustCreateDevice(t, ds, testModule(testHub, "Dev1", "mod"))
	for _, want := range []store.Device{upper, lower} {
		got, err := ds.Get(ctx, testHub, want.DeviceID, "")
		if err != nil {
			t.Fatalf("Get %s: %v", want.DeviceID, err)
		}
		checkDevice(t, got, want)
	}
	if _, err := ds.Get(ctx, testHub, "DEV1", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get DEV1: err = %v, want ErrNotFound", err)
	}
	if _, err := ds.Create(ctx, testModule(testHub, "DEV1", "mod")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Create module of DEV1: err = %v, want ErrNotFound", err)
	}
	checkEntries(t, "modules of Dev1", mustList(t, ds, store.DeviceFilter{Hub: testHub, DeviceID: "Dev1", Modules: true}),
		[]string{"Dev1/Mod", "Dev1/mod"})
	checkEntries(t, "modules of dev1", mustList(t, ds, store.DeviceFilter{Hub: testHub, DeviceID: "dev1", Modules: true}), nil)

	if err := ds.Delete(ctx, testHub, "Dev1", "", ""); err != nil {
		t.Fatalf("Delete Dev1: %v", err)
	}
	got, err := ds.Get(ctx, testHub, "dev1", "")
	if err != nil {
		t.Fatalf("Get dev1 after deleting Dev1: %v", err)
	}
	checkDevice(t, got, lower)
}

func mustList(t *testing.T, ds store.Devices, filter store.DeviceFilter) []store.Device {
	t.Helper()
	list, err := ds.List(t.Context(), filter)
	if err != nil {
		t.Fatalf("List %+v: %v", filter, err)
	}
	return list
}

// testDeviceHubCase pins down what "Hub is the hub's name, lower case"
// means for callers that pass another spelling: hub names are host names,
// so every spelling names the one hub, which reads back in lower case.
func testDeviceHubCase(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	created := mustCreateDevice(t, ds, testDevice("MyHub", "dev"))
	if created.Hub != "myhub" {
		t.Errorf("Create in MyHub: Hub = %q, want myhub", created.Hub)
	}
	mustCreateDevice(t, ds, testModule("MYHUB", "dev", "mod"))
	got, err := ds.Get(ctx, "myhub", "dev", "")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkDevice(t, got, created)
	if _, err := ds.Create(ctx, testDevice("myhub", "dev")); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("Create in another spelling of the hub: err = %v, want ErrAlreadyExists", err)
	}
	checkEntries(t, "devices of mYhUb", mustList(t, ds, store.DeviceFilter{Hub: "mYhUb"}), []string{"dev"})
	if c, err := ds.Count(ctx, "MyHUB"); err != nil || c.Total != 1 {
		t.Errorf("Count of MyHUB = %+v, %v; want 1 device", c, err)
	}
	if _, err := ds.Update(ctx, "MYHUB", "dev", "mod", func(d *store.Device) error {
		d.Twin = twinJSON(1)
		return nil
	}); err != nil {
		t.Errorf("Update in MYHUB: %v", err)
	}
	if err := ds.DeleteHub(ctx, "MyHub"); err != nil {
		t.Fatalf("DeleteHub: %v", err)
	}
	checkEntries(t, "devices after DeleteHub", mustList(t, ds, store.DeviceFilter{Hub: "myhub"}), nil)
}

func testModulesNeedDevice(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	if _, err := ds.Create(ctx, testModule(testHub, "edge", "$edgeAgent")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Create module before its device: err = %v, want ErrNotFound", err)
	}
	if _, err := ds.Get(ctx, testHub, "edge", "$edgeAgent"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a refused module: err = %v, want ErrNotFound", err)
	}
	// A module of another hub's device of that id, or of a device whose
	// id only starts the same, is no device either.
	mustCreateDevice(t, ds, testDevice("hub-2", "edge"))
	mustCreateDevice(t, ds, testDevice(testHub, "edge-1"))
	if _, err := ds.Create(ctx, testModule(testHub, "edge", "$edgeAgent")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Create module of a device only in another hub: err = %v, want ErrNotFound", err)
	}

	edge := mustCreateDevice(t, ds, testDevice(testHub, "edge"))
	agent := mustCreateDevice(t, ds, testModule(testHub, "edge", "$edgeAgent"))
	mustCreateDevice(t, ds, testModule(testHub, "edge", "$edgeHub"))
	checkEntries(t, "devices", mustList(t, ds, store.DeviceFilter{Hub: testHub}), []string{"edge", "edge-1"})
	checkEntries(t, "modules", mustList(t, ds, store.DeviceFilter{Hub: testHub, Modules: true}),
		[]string{"edge/$edgeAgent", "edge/$edgeHub"})

	// A module's delete leaves its device and sibling.
	if err := ds.Delete(ctx, testHub, "edge", "$edgeHub", ""); err != nil {
		t.Fatalf("Delete module: %v", err)
	}
	got, err := ds.Get(ctx, testHub, "edge", "")
	if err != nil {
		t.Fatalf("Get device after module delete: %v", err)
	}
	checkDevice(t, got, edge)
	got, err = ds.Get(ctx, testHub, "edge", "$edgeAgent")
	if err != nil {
		t.Fatalf("Get sibling module after module delete: %v", err)
	}
	checkDevice(t, got, agent)
}

func testDeviceDeleteModules(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	// Devices whose ids extend the deleted one's, or share it in another
	// hub, keep their modules.
	for _, hub := range []string{testHub, "hub-2"} {
		for _, id := range []string{"d", "d1", "d-", "D"} {
			mustCreateDevice(t, ds, testDevice(hub, id))
			for _, m := range []string{"m1", "m2"} {
				mustCreateDevice(t, ds, testModule(hub, id, m))
			}
		}
	}
	if err := ds.Delete(ctx, testHub, "d", "", ""); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, m := range []string{"m1", "m2"} {
		if _, err := ds.Get(ctx, testHub, "d", m); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get module %s of the deleted device: err = %v, want ErrNotFound", m, err)
		}
	}
	checkEntries(t, "devices left", mustList(t, ds, store.DeviceFilter{Hub: testHub}), []string{"D", "d-", "d1"})
	checkEntries(t, "modules left", mustList(t, ds, store.DeviceFilter{Hub: testHub, Modules: true}),
		[]string{"D/m1", "D/m2", "d-/m1", "d-/m2", "d1/m1", "d1/m2"})
	if got := listEntries(t, ds, store.DeviceFilter{Hub: "hub-2", Modules: true}); len(got) != 8 {
		t.Errorf("modules in hub-2 = %q, want all 8", got)
	}

	// A new device of that id starts without modules.
	mustCreateDevice(t, ds, testDevice(testHub, "d"))
	checkEntries(t, "modules of the new d", mustList(t, ds, store.DeviceFilter{Hub: testHub, DeviceID: "d", Modules: true}), nil)
}

func testDeviceETags(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	created := mustCreateDevice(t, ds, testDevice(testHub, "dev"))
	module := mustCreateDevice(t, ds, testModule(testHub, "dev", "mod"))
	update := func(what string, change func(d *store.Device)) store.Device {
		t.Helper()
		d, err := ds.Update(ctx, testHub, "dev", "", func(d *store.Device) error {
			change(d)
			return nil
		})
		if err != nil {
			t.Fatalf("Update %s: %v", what, err)
		}
		checkETags(t, d)
		return d
	}

	twinOnly := update("twin", func(d *store.Device) { d.Twin = twinJSON(1) })
	if twinOnly.ETag != created.ETag || twinOnly.TwinETag == created.TwinETag {
		t.Errorf("twin update: ETag %q -> %q, TwinETag %q -> %q; want only TwinETag changed",
			created.ETag, twinOnly.ETag, created.TwinETag, twinOnly.TwinETag)
	}
	if twinOnly.UpdatedAt.Before(created.UpdatedAt) || !twinOnly.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("twin update: CreatedAt %v -> %v, UpdatedAt %v -> %v", created.CreatedAt, twinOnly.CreatedAt, created.UpdatedAt, twinOnly.UpdatedAt)
	}

	identityOnly := update("identity", func(d *store.Device) { d.Identity = identityJSON("dev", "", "enabled-again") })
	if identityOnly.ETag == twinOnly.ETag || identityOnly.TwinETag != twinOnly.TwinETag {
		t.Errorf("identity update: ETag %q -> %q, TwinETag %q -> %q; want only ETag changed",
			twinOnly.ETag, identityOnly.ETag, twinOnly.TwinETag, identityOnly.TwinETag)
	}

	// Enabled mirrors the identity's status: it is part of the identity.
	disabled := update("enabled", func(d *store.Device) { d.Enabled = false })
	if disabled.ETag == identityOnly.ETag || disabled.TwinETag != identityOnly.TwinETag {
		t.Errorf("enabled update: ETag %q -> %q, TwinETag %q -> %q; want only ETag changed",
			identityOnly.ETag, disabled.ETag, identityOnly.TwinETag, disabled.TwinETag)
	}

	both := update("both", func(d *store.Device) {
		d.Identity, d.Twin = identityJSON("dev", "", "both"), twinJSON(2)
	})
	if both.ETag == disabled.ETag || both.TwinETag == disabled.TwinETag {
		t.Errorf("update of both: ETag %q -> %q, TwinETag %q -> %q; want both changed",
			disabled.ETag, both.ETag, disabled.TwinETag, both.TwinETag)
	}

	// Writing the same documents again changes nothing, and an updater
	// cannot set what the backend owns.
	same := update("nothing", func(d *store.Device) {
		d.Identity, d.Twin = json.RawMessage(string(d.Identity)), json.RawMessage(string(d.Twin))
		d.ETag, d.TwinETag, d.CreatedAt, d.UpdatedAt = "mine", "mine", time.Time{}, time.Time{}
	})
	checkDevice(t, same, both)
	got, err := ds.Get(ctx, testHub, "dev", "")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkDevice(t, got, both)

	// The module's etags are its own.
	gotModule, err := ds.Get(ctx, testHub, "dev", "mod")
	if err != nil {
		t.Fatalf("Get module: %v", err)
	}
	checkDevice(t, gotModule, module)

	// A twin write does not break an If-Match on the identity.
	update("twin again", func(d *store.Device) { d.Twin = twinJSON(3) })
	if err := ds.Delete(ctx, testHub, "dev", "", both.ETag); err != nil {
		t.Errorf("Delete with the identity's ETag after a twin update: %v", err)
	}
}

func testDeviceUpdateKeys(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	dev := mustCreateDevice(t, ds, testDevice(testHub, "dev"))
	mod := mustCreateDevice(t, ds, testModule(testHub, "dev", "mod"))
	for name, change := range map[string]func(d *store.Device){
		"hub":                    func(d *store.Device) { d.Hub = "hub-2" },
		"device id":              func(d *store.Device) { d.DeviceID = "other" },
		"device id in case only": func(d *store.Device) { d.DeviceID = "DEV" },
		"module id":              func(d *store.Device) { d.ModuleID = "mod" },
	} {
		_, err := ds.Update(ctx, testHub, "dev", "", func(d *store.Device) error {
			change(d)
			d.Twin = twinJSON(9)
			return nil
		})
		if err == nil {
			t.Errorf("Update that changes the %s: err = nil, want an error", name)
		}
	}
	if _, err := ds.Update(ctx, testHub, "dev", "mod", func(d *store.Device) error {
		d.ModuleID = ""
		return nil
	}); err == nil {
		t.Errorf("Update that turns a module into a device: err = nil, want an error")
	}
	for _, want := range []store.Device{dev, mod} {
		got, err := ds.Get(ctx, testHub, want.DeviceID, want.ModuleID)
		if err != nil {
			t.Fatalf("Get %s: %v", entryName(want), err)
		}
		checkDevice(t, got, want)
	}
	for _, id := range []string{"other", "DEV"} {
		if _, err := ds.Get(ctx, testHub, id, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get %s: err = %v, want ErrNotFound", id, err)
		}
	}
}

func testDeviceUpdaterError(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	dev := mustCreateDevice(t, ds, testDevice(testHub, "dev"))
	_, err := ds.Update(ctx, testHub, "dev", "", func(d *store.Device) error {
		d.Twin, d.Enabled = twinJSON(5), false
		return fmt.Errorf("etag mismatch: %w", store.ErrPreconditionFailed)
	})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("Update with failing updater: err = %v, want ErrPreconditionFailed passed through", err)
	}
	got, err := ds.Get(ctx, testHub, "dev", "")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkDevice(t, got, dev)
}

func testDeviceDeleteIfMatch(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	dev := mustCreateDevice(t, ds, testDevice(testHub, "dev"))
	mod := mustCreateDevice(t, ds, testModule(testHub, "dev", "mod"))

	for what, ifMatch := range map[string]string{
		"a stale etag":         "not-" + dev.ETag,
		"the twin's etag":      dev.TwinETag,
		"the module's etag":    mod.ETag,
		"the etag with quotes": `"` + dev.ETag + `"`,
	} {
		if err := ds.Delete(ctx, testHub, "dev", "", ifMatch); !errors.Is(err, store.ErrPreconditionFailed) {
			t.Errorf("Delete with If-Match of %s: err = %v, want ErrPreconditionFailed", what, err)
		}
	}
	if err := ds.Delete(ctx, testHub, "dev", "mod", dev.ETag); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Errorf("Delete of a module with its device's etag: err = %v, want ErrPreconditionFailed", err)
	}
	for _, want := range []store.Device{dev, mod} {
		got, err := ds.Get(ctx, testHub, want.DeviceID, want.ModuleID)
		if err != nil {
			t.Fatalf("Get %s after refused deletes: %v", entryName(want), err)
		}
		checkDevice(t, got, want)
	}

	if err := ds.Delete(ctx, testHub, "dev", "mod", mod.ETag); err != nil {
		t.Errorf("Delete of a module with its etag: %v", err)
	}
	if err := ds.Delete(ctx, testHub, "dev", "", dev.ETag); err != nil {
		t.Errorf("Delete with the current etag: %v", err)
	}
	// "*" and no If-Match at all are unconditional.
	for _, ifMatch := range []string{"*", ""} {
		d := mustCreateDevice(t, ds, testDevice(testHub, "dev"))
		mustCreateDevice(t, ds, testModule(testHub, "dev", "mod"))
		if _, err := ds.Update(ctx, testHub, "dev", "", func(d *store.Device) error {
			d.Identity = identityJSON("dev", "", "changed")
			return nil
		}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		if err := ds.Delete(ctx, testHub, "dev", "", ifMatch); err != nil {
			t.Errorf("Delete with If-Match %q after the etag %s changed: %v", ifMatch, d.ETag, err)
		}
		if _, err := ds.Get(ctx, testHub, "dev", "mod"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get module after Delete with If-Match %q: err = %v, want ErrNotFound", ifMatch, err)
		}
	}
}

func testDeviceListFilters(t *testing.T, s store.Store) {
	ds := s.Devices()
	for _, hub := range []string{testHub, "hub-2"} {
		for _, id := range []string{"a", "ab", "b"} {
			mustCreateDevice(t, ds, testDevice(hub, id))
		}
		for _, m := range []string{"a/m1", "a/m2", "ab/m1", "b/m0"} {
			id, mod, _ := strings.Cut(m, "/")
			mustCreateDevice(t, ds, testModule(hub, id, mod))
		}
	}
	mustCreateDevice(t, ds, testDevice("hub-2", "only-in-2"))

	for _, tc := range []struct {
		name   string
		filter store.DeviceFilter
		want   []string
	}{
		{"devices", store.DeviceFilter{Hub: testHub}, []string{"a", "ab", "b"}},
		{"devices of hub-2", store.DeviceFilter{Hub: "hub-2"}, []string{"a", "ab", "b", "only-in-2"}},
		{"modules", store.DeviceFilter{Hub: testHub, Modules: true}, []string{"a/m1", "a/m2", "ab/m1", "b/m0"}},
		{"one device", store.DeviceFilter{Hub: testHub, DeviceID: "a"}, []string{"a"}},
		{"a missing device", store.DeviceFilter{Hub: testHub, DeviceID: "only-in-2"}, nil},
		{"modules of a device", store.DeviceFilter{Hub: testHub, DeviceID: "a", Modules: true}, []string{"a/m1", "a/m2"}},
		{"modules of a device without modules", store.DeviceFilter{Hub: "hub-2", DeviceID: "only-in-2", Modules: true}, nil},
		{"devices after a", store.DeviceFilter{Hub: testHub, After: "a"}, []string{"ab", "b"}},
		{"devices after a missing id", store.DeviceFilter{Hub: testHub, After: "aa"}, []string{"ab", "b"}},
		{"modules after a", store.DeviceFilter{Hub: testHub, Modules: true, After: "a"}, []string{"a/m1", "a/m2", "ab/m1", "b/m0"}},
		{"modules after a/m1", store.DeviceFilter{Hub: testHub, Modules: true, After: "a", AfterModule: "m1"}, []string{"a/m2", "ab/m1", "b/m0"}},
		{"modules of a after m1", store.DeviceFilter{Hub: testHub, DeviceID: "a", Modules: true, After: "a", AfterModule: "m1"}, []string{"a/m2"}},
		{"modules of a after m2", store.DeviceFilter{Hub: testHub, DeviceID: "a", Modules: true, After: "a", AfterModule: "m2"}, nil},
		// Within one device, AfterModule alone continues the listing.
		{"modules of a after m1 without After", store.DeviceFilter{Hub: testHub, DeviceID: "a", Modules: true, AfterModule: "m1"}, []string{"a/m2"}},
		{"limit", store.DeviceFilter{Hub: testHub, Modules: true, Limit: 2}, []string{"a/m1", "a/m2"}},
	} {
		checkEntries(t, tc.name, mustList(t, ds, tc.filter), tc.want)
	}
}

// pageThrough lists filter in pages of limit, continuing after the last
// entry of each page, and returns the entries and page sizes.
func pageThrough(t *testing.T, ds store.Devices, filter store.DeviceFilter, limit, maxPages int) ([]string, []int) {
	t.Helper()
	var (
		names []string
		pages []int
	)
	filter.Limit = limit
	for {
		page := mustList(t, ds, filter)
		if len(page) == 0 {
			return names, pages
		}
		if len(pages) == maxPages {
			t.Fatalf("paging does not end: page sizes %v", pages)
		}
		pages = append(pages, len(page))
		for _, d := range page {
			names = append(names, entryName(d))
		}
		last := page[len(page)-1]
		filter.After, filter.AfterModule = last.DeviceID, last.ModuleID
	}
}

func testDeviceListPages(t *testing.T, s store.Store) {
	ds := s.Devices()
	// Ids are compared as given, bytewise: upper case before lower case,
	// punctuation where its byte value puts it, which linguistic
	// collations do not, and non-ASCII letters after all of ASCII.
	ids := []string{"b-1", "B_2", "a.3", "a-3", "A3", "a_3", "b10", "b1", "é", "z", "$x", "a:3"}
	for _, id := range ids {
		mustCreateDevice(t, ds, testDevice(testHub, id))
	}
	// Modules in between must neither show up nor break the paging.
	for _, id := range []string{"a-3", "b1"} {
		mustCreateDevice(t, ds, testModule(testHub, id, "m"))
	}
	mustCreateDevice(t, ds, testDevice("hub-2", "a0"))
	want := slices.Sorted(slices.Values(ids))

	checkEntries(t, "without limit", mustList(t, ds, store.DeviceFilter{Hub: testHub}), want)
	got, pages := pageThrough(t, ds, store.DeviceFilter{Hub: testHub}, 5, len(want))
	if !slices.Equal(got, want) {
		t.Errorf("paged:\n got %q\nwant %q", got, want)
	}
	if !slices.Equal(pages, []int{5, 5, 2}) {
		t.Errorf("page sizes = %v, want [5 5 2]", pages)
	}
}

func testModuleListPages(t *testing.T, s store.Store) {
	ds := s.Devices()
	modules := map[string][]string{
		"a":   {"m2", "M1", "m10", "$edgeAgent", "m-1"},
		"a-b": {"x"},
		"A":   {"y"},
		"b":   {"m1", "m2"},
		"c":   nil,
	}
	var want []string
	for id, mods := range modules {
		mustCreateDevice(t, ds, testDevice(testHub, id))
		for _, m := range mods {
			mustCreateDevice(t, ds, testModule(testHub, id, m))
			want = append(want, id+"/"+m)
		}
	}
	// Entries sort by (device id, module id): "a/…" before "a-b/…" though
	// "/" sorts after "-".
	slices.SortFunc(want, func(x, y string) int {
		xd, xm, _ := strings.Cut(x, "/")
		yd, ym, _ := strings.Cut(y, "/")
		if c := strings.Compare(xd, yd); c != 0 {
			return c
		}
		return strings.Compare(xm, ym)
	})

	checkEntries(t, "modules without limit", mustList(t, ds, store.DeviceFilter{Hub: testHub, Modules: true}), want)
	got, pages := pageThrough(t, ds, store.DeviceFilter{Hub: testHub, Modules: true}, 3, len(want))
	if !slices.Equal(got, want) {
		t.Errorf("modules paged:\n got %q\nwant %q", got, want)
	}
	if !slices.Equal(pages, []int{3, 3, 3}) {
		t.Errorf("page sizes = %v, want [3 3 3]", pages)
	}

	wantA := slices.DeleteFunc(slices.Clone(want), func(name string) bool { return !strings.HasPrefix(name, "a/") })
	got, pages = pageThrough(t, ds, store.DeviceFilter{Hub: testHub, DeviceID: "a", Modules: true}, 2, len(wantA))
	if !slices.Equal(got, wantA) {
		t.Errorf("modules of a paged:\n got %q\nwant %q", got, wantA)
	}
	if !slices.Equal(pages, []int{2, 2, 1}) {
		t.Errorf("page sizes = %v, want [2 2 1]", pages)
	}
}

func testDeviceCount(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	count := func(hub string, want store.DeviceCounts) {
		t.Helper()
		got, err := ds.Count(ctx, hub)
		if err != nil {
			t.Fatalf("Count %s: %v", hub, err)
		}
		if got != want {
			t.Errorf("Count %s = %+v, want %+v", hub, got, want)
		}
	}
	for i := range 5 {
		d := testDevice(testHub, fmt.Sprintf("dev-%d", i))
		d.Enabled = i < 3
		mustCreateDevice(t, ds, d)
		// Modules are no devices: they count for nothing, enabled or not.
		m := testModule(testHub, d.DeviceID, "m")
		m.Enabled = i%2 == 0
		mustCreateDevice(t, ds, m)
	}
	mustCreateDevice(t, ds, testDevice("hub-2", "dev-0"))
	count(testHub, store.DeviceCounts{Total: 5, Enabled: 3, Disabled: 2})
	count("hub-2", store.DeviceCounts{Total: 1, Enabled: 1})
	count("hub-3", store.DeviceCounts{})

	if _, err := ds.Update(ctx, testHub, "dev-0", "", func(d *store.Device) error {
		d.Enabled = false
		return nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	count(testHub, store.DeviceCounts{Total: 5, Enabled: 2, Disabled: 3})
	if err := ds.Delete(ctx, testHub, "dev-4", "", ""); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	count(testHub, store.DeviceCounts{Total: 4, Enabled: 2, Disabled: 2})
}

func testDeleteHub(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	// Hubs whose names extend or start the deleted one's keep everything.
	hubs := []string{"hub", "hub2", "hu", "hub-"}
	for _, hub := range hubs {
		for _, id := range []string{"d1", "d2"} {
			mustCreateDevice(t, ds, testDevice(hub, id))
			mustCreateDevice(t, ds, testModule(hub, id, "m"))
		}
	}
	if err := ds.DeleteHub(ctx, "hub"); err != nil {
		t.Fatalf("DeleteHub: %v", err)
	}
	checkEntries(t, "devices of the deleted hub", mustList(t, ds, store.DeviceFilter{Hub: "hub"}), nil)
	checkEntries(t, "modules of the deleted hub", mustList(t, ds, store.DeviceFilter{Hub: "hub", Modules: true}), nil)
	if c, err := ds.Count(ctx, "hub"); err != nil || c != (store.DeviceCounts{}) {
		t.Errorf("Count of the deleted hub = %+v, %v; want zeros", c, err)
	}
	for _, hub := range hubs[1:] {
		checkEntries(t, "devices of "+hub, mustList(t, ds, store.DeviceFilter{Hub: hub}), []string{"d1", "d2"})
		checkEntries(t, "modules of "+hub, mustList(t, ds, store.DeviceFilter{Hub: hub, Modules: true}), []string{"d1/m", "d2/m"})
	}
	// Deleting an empty registry is no error, and the ids are free again.
	if err := ds.DeleteHub(ctx, "hub"); err != nil {
		t.Errorf("DeleteHub of an empty registry: %v", err)
	}
	mustCreateDevice(t, ds, testDevice("hub", "d1"))
	mustCreateDevice(t, ds, testModule("hub", "d1", "m"))
}

func testDeviceConcurrentUpdate(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	created := mustCreateDevice(t, ds, testDevice(testHub, "dev"))
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		twinETags = map[string]bool{}
	)
	for range concurrency {
		wg.Go(func() {
			stored, err := ds.Update(ctx, testHub, "dev", "", func(d *store.Device) error {
				d.Twin = twinJSON(twinCounter(d) + 1)
				return nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if twinETags[stored.TwinETag] {
				t.Errorf("two updates returned TwinETag %q", stored.TwinETag)
			}
			twinETags[stored.TwinETag] = true
			if stored.ETag != created.ETag {
				t.Errorf("a twin update changed the ETag %q to %q", created.ETag, stored.ETag)
			}
		})
	}
	wg.Wait()
	got, err := ds.Get(ctx, testHub, "dev", "")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if n := twinCounter(&got); n != concurrency {
		t.Errorf("counter = %d after %d concurrent increments: updates were lost", n, concurrency)
	}
}

func testDeviceConcurrentCreate(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	mustCreateDevice(t, ds, testDevice(testHub, "edge"))
	for _, key := range []store.DeviceKey{{DeviceID: "dev"}, {DeviceID: "edge", ModuleID: "mod"}} {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []store.Device
		)
		for i := range concurrency {
			wg.Go(func() {
				d := testModule(testHub, key.DeviceID, key.ModuleID)
				d.Twin = twinJSON(i)
				stored, err := ds.Create(ctx, d)
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, stored)
					mu.Unlock()
				case !errors.Is(err, store.ErrAlreadyExists):
					t.Errorf("Create of contested %v: err = %v, want nil or ErrAlreadyExists", key, err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("%d creates of %v succeeded, want exactly 1", len(winners), key)
		}
		got, err := ds.Get(ctx, testHub, key.DeviceID, key.ModuleID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		checkDevice(t, got, winners[0])
	}
}

// testModuleCreateDeviceDeleteRace races module creates against their
// device's delete, or their hub's: whichever order they end up in, no
// module may outlive its device.
func testModuleCreateDeviceDeleteRace(t *testing.T, s store.Store) {
	ctx, ds := t.Context(), s.Devices()
	for round := range 6 {
		mustCreateDevice(t, ds, testDevice(testHub, "edge"))
		var wg sync.WaitGroup
		for i := range concurrency {
			wg.Go(func() {
				if i == concurrency/2 {
					var err error
					if round%2 == 0 {
						err = ds.Delete(ctx, testHub, "edge", "", "")
					} else {
						err = ds.DeleteHub(ctx, testHub)
					}
					if err != nil {
						t.Errorf("round %d: delete: %v", round, err)
					}
					return
				}
				_, err := ds.Create(ctx, testModule(testHub, "edge", fmt.Sprintf("m%02d", i)))
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("round %d: Create module: err = %v, want nil or ErrNotFound", round, err)
				}
			})
		}
		wg.Wait()
		if _, err := ds.Get(ctx, testHub, "edge", ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("round %d: Get of the deleted device: err = %v, want ErrNotFound", round, err)
		}
		checkEntries(t, fmt.Sprintf("round %d: modules left without their device", round),
			mustList(t, ds, store.DeviceFilter{Hub: testHub, Modules: true}), nil)
	}
}
