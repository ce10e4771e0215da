package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the variable that turns on the PostgreSQL tier. It holds
// the URL of a role allowed to create databases, e.g.
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
const PostgresEnv = "OUTPOST_TEST_POSTGRES"

// postgresTimeout bounds each administrative round trip so a wedged server
// fails the test instead of hanging it until the package deadline.
const postgresTimeout = 30 * time.Second

// PostgresAdminURL returns the administrative URL from OUTPOST_TEST_POSTGRES,
// or ends the test (see Unavailable) when it is not set.
func PostgresAdminURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(PostgresEnv)
	if admin == "" {
		Unavailable(t, "PostgreSQL tier off: %s is not set", PostgresEnv)
	}
	return admin
}

// PostgresDSN creates an empty database for this test alone and returns its
// URL; the database is dropped when the test ends. Giving every test its own
// database lets packages and parallel tests share one server without seeing
// each other's rows.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL(t)
	if _, err := pgx.ParseConfig(admin); err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}

	var suffix [6]byte
	rand.Read(suffix[:])
	name := "outpost_t_" + hex.EncodeToString(suffix[:])
	quoted := pgx.Identifier{name}.Sanitize()

	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		Unavailable(t, "PostgreSQL unreachable: %v", err)
	}
	defer conn.Close(context.Background())
	// A linguistic collation, as production databases often have, makes
	// code that silently relies on bytewise ordering fail in tests rather
	// than in the field (ICU's en-US sorts "a%b" between "a/x" and "a0").
	// Servers built without ICU get their default collation instead.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+quoted+" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"); err != nil {
		t.Logf("creating test database with ICU collation failed (%v); using the server default", err)
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+quoted); err != nil {
			t.Fatalf("create test database: %v", err)
		}
	}

	t.Cleanup(func() {
		// DROP DATABASE waits for a checkpoint, which on a loaded machine can
		// take far longer than a query; give it room rather than fail a test
		// that passed.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		// FORCE ends sessions a failed test left open, so the drop never
		// waits on a leaked pool.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quoted+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// withDatabase points a connection string, in either of the forms pgx
// accepts, at another database.
func withDatabase(connString, database string) string {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err == nil {
			u.Path = "/" + database
			u.RawPath = ""
			return u.String()
		}
	}
	// Keyword/value form: a later keyword overrides an earlier one.
	return connString + " dbname=" + database
}
