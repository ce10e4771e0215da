package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/testenv"
)

// TestPrincipalQueriesUseIndexes asks each database how it would run the
// principal lookups that must not scan the table — token issuance looks
// principals up by app id at a high rate. The plans are generic ones, the
// kind a prepared statement reuses: a partial index that only a known
// parameter value could justify would not show up here.
func TestPrincipalQueriesUseIndexes(t *testing.T) {
	type lookup struct {
		name  string
		query string
		args  []any
		index string
	}
	lookups := []lookup{
		{"by app id", principalByAppIDQuery, []any{"app-1"}, "principals_app_id"},
		{"user by name", principalUserQuery, []any{store.Key("Alice@contoso.com")}, "principals_user_name"},
	}
	for _, tc := range []struct {
		name   string
		filter store.PrincipalFilter
		index  string
	}{
		{"list by resource", store.PrincipalFilter{ResourceID: "/subscriptions/s/resourceGroups/rg", After: "oid", Limit: 10}, "principals_resource"},
		{"list by kind", store.PrincipalFilter{Kind: store.KindManagedIdentity, After: "oid", Limit: 10}, "principals_kind"},
	} {
		query, args := principalListQuery(tc.filter)
		lookups = append(lookups, lookup{tc.name, query, args, tc.index})
	}

	check := func(t *testing.T, s *Store, plan queryPlanner) {
		for _, l := range lookups {
			text, err := planOf(t, s, plan, l.query, l.args)
			if err != nil {
				t.Fatalf("%s: explain: %v", l.name, err)
			}
			if !strings.Contains(text, l.index) {
				t.Errorf("%s: plan does not use index %s:\n%s", l.name, l.index, text)
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		check(t, openForTest(t, Config{Driver: DriverSQLite, DSN: filepath.Join(t.TempDir(), "outpost.db")}), sqlitePlan)
	})
	t.Run("postgres", func(t *testing.T) {
		check(t, openForTest(t, Config{Driver: DriverPostgres, DSN: testenv.PostgresDSN(t)}), postgresPlan)
	})
}

// queryPlanner asks the database in tx how it would run query.
type queryPlanner func(ctx context.Context, tx *sql.Tx, query string, args []any) (string, error)

// planOf returns query's plan, asked in a transaction of its own.
func planOf(t *testing.T, s *Store, plan queryPlanner, query string, args []any) (string, error) {
	var text string
	err := s.inTx(t.Context(), func(tx *sql.Tx) error {
		var err error
		text, err = plan(t.Context(), tx, query, args)
		return err
	})
	return text, err
}

// sqlitePlan needs no care for generic plans: SQLite plans a statement
// before any value is bound, so every plan is generic.
func sqlitePlan(ctx context.Context, tx *sql.Tx, query string, args []any) (string, error) {
	return planText(tx.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query, args...))
}

// postgresPlan asks for the generic plan a prepared statement reuses.
func postgresPlan(ctx context.Context, tx *sql.Tx, query string, args []any) (string, error) {
	// An empty table is cheapest to scan, so scans are ruled out; a query
	// that cannot use the index then still plans one.
	for _, stmt := range []string{
		`SET LOCAL enable_seqscan = off`,
		`SET LOCAL plan_cache_mode = force_generic_plan`,
		`PREPARE lookup AS ` + query,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return "", err
		}
	}
	// PREPARE outlives the transaction; the connection is pooled.
	defer tx.ExecContext(ctx, `DEALLOCATE lookup`)
	literals := make([]string, len(args))
	for i, a := range args {
		literals[i] = "'" + strings.ReplaceAll(fmt.Sprint(a), "'", "''") + "'"
	}
	return planText(tx.QueryContext(ctx, `EXPLAIN EXECUTE lookup(`+strings.Join(literals, ", ")+`)`))
}

func openForTest(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// planText joins the text columns of an EXPLAIN's rows.
func planText(rows *sql.Rows, err error) (string, error) {
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for rows.Next() {
		values := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		for i, v := range values {
			if raw, ok := v.([]byte); ok {
				values[i] = string(raw)
			}
		}
		fmt.Fprintln(&b, values...)
	}
	return b.String(), rows.Err()
}
