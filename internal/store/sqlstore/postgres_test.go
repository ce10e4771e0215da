package sqlstore_test

import (
	"testing"

	"github.com/outpost-iot/outpost/internal/store/sqlstore"
	"github.com/outpost-iot/outpost/internal/store/storetest"
	"github.com/outpost-iot/outpost/internal/testenv"
)

func TestPostgres(t *testing.T) {
	testenv.PostgresAdminURL(t)
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		return backend(t, sqlstore.Config{Driver: sqlstore.DriverPostgres, DSN: testenv.PostgresDSN(t)})
	})
}
