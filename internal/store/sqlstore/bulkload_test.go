package sqlstore

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/testenv"
)

// TestAfterBulkLoadGivesThePlannerStatistics: after a bulk load the
// devices table has planner statistics on both backends — what a registry
// just filled by an import lacks when the database never analyzes on its
// own (SQLite; a PostgreSQL with autovacuum off).
func TestAfterBulkLoadGivesThePlannerStatistics(t *testing.T) {
	cases := []struct {
		name  string
		cfg   func(t *testing.T) Config
		stats string // a query returning how many rows the statistics count
	}{
		{"SQLite", func(t *testing.T) Config {
			return Config{Driver: DriverSQLite, DSN: filepath.Join(t.TempDir(), "outpost.db")}
		}, `SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'devices'`},
		{"PostgreSQL", func(t *testing.T) Config {
			testenv.PostgresAdminURL(t)
			return Config{Driver: DriverPostgres, DSN: testenv.PostgresDSN(t)}
		}, `SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE relname = 'devices' AND relkind = 'r'`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openForTest(t, tc.cfg(t))
			ds := s.Devices()
			keys := make([]store.DeviceKey, 500)
			for i := range keys {
				keys[i] = store.DeviceKey{DeviceID: fmt.Sprintf("d%04d", i)}
			}
			_, err := ds.PutMany(t.Context(), "hub", keys, func(i int, _ *store.Device) (*store.Device, error) {
				return &store.Device{Hub: "hub", DeviceID: keys[i].DeviceID, Enabled: true, Identity: []byte(`{}`), Twin: []byte(`{}`)}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := ds.AfterBulkLoad(t.Context()); err != nil {
				t.Fatal(err)
			}
			var n int64
			if err := s.writer.QueryRowContext(t.Context(), tc.stats).Scan(&n); err != nil {
				t.Fatalf("read the statistics: %v", err)
			}
			if n == 0 {
				t.Errorf("no planner statistics for devices after AfterBulkLoad (%s)", tc.stats)
			}
		})
	}
}
