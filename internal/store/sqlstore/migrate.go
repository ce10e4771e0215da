package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// migrationFiles holds the schema history. A version is either one shared
// file, NNNN_title.sql, or, where the SQL must differ, one file per dialect,
// NNNN_title.sqlite.sql and NNNN_title.postgres.sql. Files are never edited
// once released; a change is a new version.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

var dialectNames = []string{DriverSQLite, DriverPostgres}

type migration struct {
	version int
	file    string
	sql     string
}

// loadMigrations returns the migrations for dialect in version order,
// checking that the whole set is well formed for every dialect so a missing
// per-dialect file fails every build's tests, not one backend in production.
func loadMigrations(fsys fs.FS, dialect string) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	shared := map[int]string{}
	perDialect := map[int]map[string]string{}
	for _, name := range names {
		base := strings.TrimSuffix(path.Base(name), ".sql")
		digits, title, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(digits)
		if !ok || err != nil || version < 1 || title == "" {
			return nil, fmt.Errorf("migration %s: want NNNN_title[.dialect].sql", name)
		}
		if i := strings.LastIndexByte(title, '.'); i >= 0 {
			d := title[i+1:]
			if !slices.Contains(dialectNames, d) {
				return nil, fmt.Errorf("migration %s: unknown dialect %q", name, d)
			}
			if perDialect[version] == nil {
				perDialect[version] = map[string]string{}
			}
			if prev, dup := perDialect[version][d]; dup {
				return nil, fmt.Errorf("migrations %s and %s share version %d", prev, name, version)
			}
			perDialect[version][d] = name
			continue
		}
		if prev, dup := shared[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, name, version)
		}
		shared[version] = name
	}

	var out []migration
	for version := 1; version <= len(shared)+len(perDialect); version++ {
		name, isShared := shared[version]
		files, isSplit := perDialect[version]
		switch {
		case isShared && isSplit:
			return nil, fmt.Errorf("migration version %d has both a shared and per-dialect files", version)
		case isSplit:
			for _, d := range dialectNames {
				if _, ok := files[d]; !ok {
					return nil, fmt.Errorf("migration version %d has no %s file", version, d)
				}
			}
			name = files[dialect]
		case !isShared:
			return nil, fmt.Errorf("migration version %d is missing", version)
		}
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: version, file: path.Base(name), sql: string(text)})
	}
	return out, nil
}

// migrate applies the migrations db lacks in one transaction, so a failed
// migration leaves the schema as it was (both databases have transactional
// DDL).
func migrate(ctx context.Context, db *sql.DB, d dialect, log *slog.Logger) error {
	migrations, err := loadMigrations(migrationFiles, d.name)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()

	if d.migrationLock != "" {
		if _, err := tx.ExecContext(ctx, d.migrationLock); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		file       TEXT NOT NULL,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if current > len(migrations) {
		// A newer node migrated already. Migrations are additive, so keep
		// serving: refusing would stall a rolling upgrade halfway.
		log.Warn("database schema is newer than this build", "schema_version", current, "known_version", len(migrations))
	}
	for _, m := range migrations[min(current, len(migrations)):] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.file, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, file, applied_at) VALUES ($1, $2, $3)`,
			m.version, m.file, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.file, err)
		}
		log.Info("applied schema migration", "file", m.file)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
