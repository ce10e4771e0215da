package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/outpost-iot/outpost/internal/store"
)

// TestUnavailableConnector: a PostgreSQL that cannot be reached fails fast
// with store.ErrUnavailable, which the APIs answer 503 (retry later). The
// fault suite (test/e2e TestFaultPostgresRestart) covers the pooled
// connections a restart ends (57P01).
func TestUnavailableConnector(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg, err := pgx.ParseConfig("postgres://postgres@" + addr + "/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(unavailableConnector{stdlib.GetConnector(*cfg)})
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = db.ExecContext(ctx, "SELECT 1")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("exec with the server away: %v; want store.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %s", d)
	}
}
