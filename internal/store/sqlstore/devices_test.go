package sqlstore

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/testenv"
)

// TestDeviceQueriesUseIndexes holds the registry's queries to plans that
// stay fast with a million devices: lookups and keyset pages through the
// primary key, in its order (no sort of the hub's rows before the LIMIT),
// and Count through the covering devices_enabled index.
func TestDeviceQueriesUseIndexes(t *testing.T) {
	const primaryKey = "primary key" // stands for the per-database name below
	type lookup struct {
		name  string
		query string
		args  []any
		index string
		// sorted allows a sort step: only for queries whose result is
		// small whatever the registry's size.
		sorted bool
	}
	lookups := []lookup{
		{name: "get", query: deviceGetQuery, args: []any{"hub", "dev", ""}, index: primaryKey},
		{name: "count", query: deviceCountQuery, args: []any{"hub"}, index: "devices_enabled"},
		{name: "delete device", query: deviceDeleteQuery, args: []any{"hub", "dev"}, index: primaryKey},
		{name: "delete module", query: moduleDeleteQuery, args: []any{"hub", "dev", "mod"}, index: primaryKey},
	}
	for _, tc := range []struct {
		name   string
		filter store.DeviceFilter
	}{
		{"list devices", store.DeviceFilter{Hub: "hub", Limit: 100}},
		{"list devices after", store.DeviceFilter{Hub: "hub", After: "dev", Limit: 100}},
		{"list modules after", store.DeviceFilter{Hub: "hub", Modules: true, After: "dev", AfterModule: "mod", Limit: 100}},
		{"list modules of a device", store.DeviceFilter{Hub: "hub", DeviceID: "dev", Modules: true, Limit: 100}},
		{"list modules of a device after", store.DeviceFilter{Hub: "hub", DeviceID: "dev", Modules: true, AfterModule: "mod", Limit: 100}},
	} {
		query, args := deviceListQuery(tc.filter)
		lookups = append(lookups, lookup{name: tc.name, query: query, args: args, index: primaryKey})
	}
	d := sqliteDialect()
	keys := []store.DeviceKey{{DeviceID: "a"}, {DeviceID: "a", ModuleID: "m"}, {DeviceID: "b"}}
	query, args := deviceLoadQuery(d, "hub", keys)
	lookups = append(lookups, lookup{name: "load a batch", query: query, args: args, index: primaryKey, sorted: true})

	check := func(t *testing.T, s *Store, plan queryPlanner, primaryIndex, sortStep string) {
		for _, l := range lookups {
			if l.name == "load a batch" {
				// The lock clause differs between the databases.
				l.query, l.args = deviceLoadQuery(s.dialect, "hub", keys)
			}
			text, err := planOf(t, s, plan, l.query, l.args)
			if err != nil {
				t.Fatalf("%s: explain: %v", l.name, err)
			}
			index := l.index
			if index == primaryKey {
				index = primaryIndex
			}
			if !strings.Contains(text, index) {
				t.Errorf("%s: plan does not use index %s:\n%s", l.name, index, text)
			}
			if !l.sorted && strings.Contains(text, sortStep) {
				t.Errorf("%s: plan sorts (%s) instead of reading the index in order:\n%s", l.name, sortStep, text)
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		s := openForTest(t, Config{Driver: DriverSQLite, DSN: filepath.Join(t.TempDir(), "outpost.db")})
		check(t, s, sqlitePlan, "sqlite_autoindex_devices_1", "TEMP B-TREE")
	})
	t.Run("postgres", func(t *testing.T) {
		s := openForTest(t, Config{Driver: DriverPostgres, DSN: testenv.PostgresDSN(t)})
		check(t, s, postgresPlan, "devices_key", "Sort")
	})
}
