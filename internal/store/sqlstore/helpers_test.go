package sqlstore_test

import (
	"log/slog"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
	"github.com/outpost-iot/outpost/internal/store/storetest"
)

// backend opens cfg as often as the suite asks, logging through t.
func backend(t *testing.T, cfg sqlstore.Config) storetest.Backend {
	return func() store.Store {
		t.Helper()
		s, err := sqlstore.Open(t.Context(), cfg, testLogger(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}
