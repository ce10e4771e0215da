package sqlstore

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/testenv"
)

// TestDeviceQueriesUseIndexes holds the registry's queries to plans that
// stay fast with a million devices: lookups by the whole primary key,
// keyset pages read in its order (no sort of the hub's rows before the
// LIMIT), and Count through the covering devices_enabled index.
// PostgreSQL plans by statistics, so its table first gets a hub of devices
// and an ANALYZE; SQLite, without statistics, plans by rules alone.
func TestDeviceQueriesUseIndexes(t *testing.T) {
	const primaryKey = "primary key" // stands for the per-database name
	type lookup struct {
		name  string
		query string
		args  []any
		index string
		// fullKey requires a lookup by all three key columns.
		fullKey bool
		// sorted allows a sort step: only for queries whose result is
		// small whatever the registry's size.
		sorted bool
	}
	lookups := []lookup{
		{name: "get", query: deviceGetQuery, args: []any{"hub", "dev", "mod"}, index: primaryKey, fullKey: true},
		{name: "count", query: deviceCountQuery, args: []any{"hub"}, index: "devices_enabled"},
		{name: "delete device", query: deviceDeleteQuery, args: []any{"hub", "dev"}, index: primaryKey},
		{name: "delete module", query: moduleDeleteQuery, args: []any{"hub", "dev", "mod"}, index: primaryKey, fullKey: true},
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
	keys := []store.DeviceKey{{DeviceID: "a"}, {DeviceID: "a", ModuleID: "m"}, {DeviceID: "b"}}

	type database struct {
		primaryIndex string
		// fullKeyTerm and sortStep are how the plans show a lookup by
		// the whole key and a sort.
		fullKeyTerm, sortStep string
		plan                  queryPlanner
	}
	check := func(t *testing.T, s *Store, db database) {
		// The lock clause of the batch load differs between the databases.
		query, args := deviceLoadQuery(s.dialect, "hub", keys)
		all := append(lookups, lookup{name: "load a batch", query: query, args: args, index: primaryKey, fullKey: true, sorted: true})
		for _, l := range all {
			text, err := planOf(t, s, db.plan, l.query, l.args)
			if err != nil {
				t.Fatalf("%s: explain: %v", l.name, err)
			}
			index := l.index
			if index == primaryKey {
				index = db.primaryIndex
			}
			if !strings.Contains(text, index) {
				t.Errorf("%s: plan does not use index %s:\n%s", l.name, index, text)
			}
			if l.fullKey && !strings.Contains(text, db.fullKeyTerm) {
				t.Errorf("%s: plan does not look up the whole key (%s):\n%s", l.name, db.fullKeyTerm, text)
			}
			if !l.sorted && strings.Contains(text, db.sortStep) {
				t.Errorf("%s: plan sorts (%s) instead of reading the index in order:\n%s", l.name, db.sortStep, text)
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		s := openForTest(t, Config{Driver: DriverSQLite, DSN: filepath.Join(t.TempDir(), "outpost.db")})
		check(t, s, database{primaryIndex: "sqlite_autoindex_devices_1",
			fullKeyTerm: "AND module_id=?)", sortStep: "TEMP B-TREE", plan: sqlitePlan})
	})
	t.Run("postgres", func(t *testing.T) {
		s := openForTest(t, Config{Driver: DriverPostgres, DSN: testenv.PostgresDSN(t)})
		for _, stmt := range []string{
			// Every tenth device is an edge device with two modules.
			`INSERT INTO devices (` + deviceColumns + `)
				SELECT 'hub', 'dev-' || g, m, 1, NULL, NULL, 'e', 't', 0, 0
				FROM generate_series(1, 20000) AS g, unnest(ARRAY['', '$edgeAgent', '$edgeHub']) AS m
				WHERE m = '' OR g % 10 = 0`,
			`ANALYZE devices`,
		} {
			if _, err := s.writer.ExecContext(t.Context(), stmt); err != nil {
				t.Fatalf("fill: %v", err)
			}
		}
		check(t, s, database{primaryIndex: "devices_key",
			fullKeyTerm: "AND (module_id = ", sortStep: "Sort", plan: postgresPlan})
	})
}
