package sqlstore_test

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/outpost-iot/outpost/internal/store/sqlstore"
	"github.com/outpost-iot/outpost/internal/testenv"
)

// TestOpenConcurrently starts several nodes on one empty database at once:
// each migration must be applied exactly once (a second CREATE TABLE would
// fail that node's Open).
func TestOpenConcurrently(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testOpenConcurrently(t, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: filepath.Join(t.TempDir(), "outpost.db")})
	})
	t.Run("postgres", func(t *testing.T) {
		testOpenConcurrently(t, sqlstore.Config{Driver: sqlstore.DriverPostgres, DSN: testenv.PostgresDSN(t)})
	})
}

func testOpenConcurrently(t *testing.T, cfg sqlstore.Config) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			s, err := sqlstore.Open(t.Context(), cfg, testLogger(t))
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
}

func TestConfigValidate(t *testing.T) {
	err := sqlstore.Config{Driver: "mysql"}.Validate()
	if err == nil || !strings.Contains(err.Error(), `unknown driver "mysql"`) || !strings.Contains(err.Error(), "dsn is required") {
		t.Errorf("Validate = %v, want both problems reported", err)
	}
	if err := (sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: "outpost.db"}).Validate(); err != nil {
		t.Errorf("Validate of a good config: %v", err)
	}
}
