package registry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

func newService(t *testing.T) *registry.Service {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return registry.New(st.Devices(), nil, time.Now)
}

func code(err error) string {
	var e *registry.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestIdentityLifecycle(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	d, created, err := s.PutIdentity(ctx, "hub", "dev1", "", registry.Identity{Authentication: registry.Authentication{SymmetricKey: &registry.SymmetricKey{}}}, "")
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	k := d.Authentication.SymmetricKey
	if d.Status != "enabled" || d.Authentication.Type != "sas" || len(k.PrimaryKey) != 44 || k.PrimaryKey == k.SecondaryKey || d.ETag == "" || d.GenerationID == "" {
		t.Fatalf("created = %+v", d)
	}
	if _, _, err := s.PutIdentity(ctx, "hub", "dev1", "", registry.Identity{}, ""); code(err) != "DeviceAlreadyExists" {
		t.Errorf("PUT without If-Match on an existing device: %v", err)
	}
	if _, _, err := s.PutIdentity(ctx, "hub", "dev1", "", registry.Identity{Status: "disabled"}, `"stale"`); code(err) != "PreconditionFailed" {
		t.Errorf("stale If-Match: %v", err)
	}
	upd, created, err := s.PutIdentity(ctx, "hub", "dev1", "", registry.Identity{Status: "disabled", Authentication: d.Authentication}, `"`+d.ETag+`"`)
	if err != nil || created || upd.Status != "disabled" || upd.ETag == d.ETag || upd.GenerationID != d.GenerationID {
		t.Fatalf("update = %+v, %v", upd, err)
	}
	if _, _, err := s.PutIdentity(ctx, "hub", "bad id/x", "", registry.Identity{}, ""); code(err) != "ArgumentInvalid" {
		t.Errorf("bad id: %v", err)
	}
	if _, _, err := s.PutIdentity(ctx, "hub", "nodev", "m1", registry.Identity{}, ""); code(err) != "DeviceNotFound" {
		t.Errorf("module of a missing device: %v", err)
	}
	if _, _, err := s.PutIdentity(ctx, "hub", "dev1", "m1", registry.Identity{}, ""); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Statistics(ctx, "hub")
	if st.TotalDeviceCount != 1 || st.DisabledDeviceCount != 1 {
		t.Errorf("statistics = %+v (modules must not count)", st)
	}
	if err := s.DeleteIdentity(ctx, "hub", "dev1", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetIdentity(ctx, "hub", "dev1", "m1"); code(err) != "ModuleNotFound" {
		t.Errorf("module survived its device: %v", err)
	}
}

func TestTwinsAndQuery(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	var changes []registry.TwinChange
	s.OnTwinChange(func(_ context.Context, c registry.TwinChange) { changes = append(changes, c) })
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := s.PutIdentity(ctx, "hub", id, "", registry.Identity{}, ""); err != nil {
			t.Fatal(err)
		}
	}
	tw, err := s.UpdateTwin(ctx, "hub", "b", "", registry.TwinPatch{Tags: map[string]any{"site": "x", "floor": 3.0}}, "", false)
	if err != nil || tw.Tags["site"] != "x" || tw.Version != 1 {
		t.Fatalf("patch tags = %+v, %v", tw, err)
	}
	patch := registry.TwinPatch{}
	patch.Properties = &struct {
		Desired map[string]any `json:"desired"`
	}{Desired: map[string]any{"interval": 5.0}}
	tw, err = s.UpdateTwin(ctx, "hub", "b", "", patch, tw.ETag, false)
	if err != nil || tw.Properties.Desired["interval"] != 5.0 || tw.Properties.Desired["$version"] != int64(1) {
		t.Fatalf("patch desired = %+v, %v", tw.Properties.Desired, err)
	}
	if len(changes) != 2 || changes[1].Desired["$version"] != int64(1) {
		t.Errorf("changes = %+v", changes)
	}
	if _, err := s.UpdateTwin(ctx, "hub", "b", "", patch, "stale", false); code(err) != "PreconditionFailed" {
		t.Errorf("stale twin etag: %v", err)
	}
	v, err := s.ReportProperties(ctx, "hub", "b", "", map[string]any{"fw": "1.2"})
	if err != nil || v != 1 {
		t.Fatalf("report: %d %v", v, err)
	}
	for q, want := range map[string]int{
		"SELECT * FROM devices":                                                          3,
		"SELECT * FROM devices WHERE tags.site = 'x'":                                    1,
		"select * from devices where tags.floor >= 3 AND properties.reported.fw = '1.2'": 1,
		"SELECT * FROM devices WHERE NOT (tags.site = 'x')":                              0, // undefined for a and c, as in IoT Hub
		"SELECT * FROM devices WHERE deviceId = 'a' OR deviceId = 'c'":                   2,
		"SELECT * FROM devices WHERE tags.site != 'y'":                                   1,
	} {
		pq, err := registry.ParseQuery(q)
		if err != nil {
			t.Errorf("ParseQuery(%q): %v", q, err)
			continue
		}
		out, _, err := s.RunQuery(ctx, "hub", pq, 100, "")
		if err != nil || len(out) != want {
			t.Errorf("%q -> %d results (%v), want %d", q, len(out), err, want)
		}
	}
	pq, _ := registry.ParseQuery("SELECT COUNT() AS n FROM devices WHERE status = 'enabled'")
	out, _, _ := s.RunQuery(ctx, "hub", pq, 100, "")
	if m, ok := out[0].(map[string]int64); !ok || m["n"] != 3 {
		t.Errorf("count = %v", out)
	}
	// Paging with a continuation.
	pq, _ = registry.ParseQuery("SELECT * FROM devices")
	first, next, _ := s.RunQuery(ctx, "hub", pq, 2, "")
	rest, done, _ := s.RunQuery(ctx, "hub", pq, 2, next)
	if len(first) != 2 || next == "" || len(rest) != 1 || done != "" {
		t.Errorf("paging: %d %q %d %q", len(first), next, len(rest), done)
	}
}

func TestQueryErrors(t *testing.T) {
	for _, q := range []string{"", "DELETE FROM devices", "SELECT deviceId FROM devices", "SELECT * FROM jobs",
		"SELECT * FROM devices WHERE", "SELECT * FROM devices WHERE (a = 1", "SELECT * FROM devices WHERE a = 'x", "SELECT * FROM devices x"} {
		if _, err := registry.ParseQuery(q); code(err) != "SqlQueryInvalid" {
			t.Errorf("ParseQuery(%q) = %v, want SqlQueryInvalid", q, err)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("SELECT * FROM devices WHERE tags.a = 'b' AND (x > 1 OR NOT y != null)")
	f.Add("SELECT COUNT() AS n FROM devices.modules")
	f.Fuzz(func(t *testing.T, q string) {
		_, _ = registry.ParseQuery(q)
	})
}

func TestAsErrorUnavailableStore(t *testing.T) {
	e := registry.AsError(fmt.Errorf("registry: get: %w", fmt.Errorf("sqlstore: %w: dial", store.ErrUnavailable)))
	if e.Status != 503 || e.Code != "ServiceUnavailable" {
		t.Errorf("AsError of an unreachable store: %d %s, want 503 ServiceUnavailable", e.Status, e.Code)
	}
	if e := registry.AsError(errors.New("boom")); e.Status != 500 {
		t.Errorf("AsError of an unknown error: %d, want 500", e.Status)
	}
}
