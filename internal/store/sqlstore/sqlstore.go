package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/outpost-iot/outpost/internal/store"
)

// Driver names accepted in Config.Driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Config selects and addresses the database.
type Config struct {
	// Driver is DriverSQLite or DriverPostgres.
	Driver string
	// DSN is, for SQLite, the path of the database file (its directory is
	// created when missing); for PostgreSQL, a connection URL or
	// keyword/value string as pgx accepts it.
	DSN string
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	switch c.Driver {
	case DriverSQLite, DriverPostgres:
	case "":
		errs = append(errs, errors.New("driver is required (sqlite or postgres)"))
	default:
		errs = append(errs, fmt.Errorf("unknown driver %q (want sqlite or postgres)", c.Driver))
	}
	if c.DSN == "" {
		errs = append(errs, errors.New("dsn is required"))
	}
	return errors.Join(errs...)
}

const (
	// sqliteBusyTimeout is how long an SQLite connection waits for a lock
	// held by another process (or a checkpoint) before failing.
	sqliteBusyTimeout = 10 * time.Second
	// postgresMaxConns bounds each node's pool so a few nodes stay well
	// under PostgreSQL's default max_connections of 100.
	postgresMaxConns = 16
	// postgresMaxIdleTime closes a pooled connection unused this long.
	postgresMaxIdleTime = 2 * time.Minute
	// postgresConnectTimeout bounds opening a connection when the DSN sets
	// no connect_timeout.
	postgresConnectTimeout = 5 * time.Second
)

// Store is the store.Store over SQLite or PostgreSQL. It is safe for
// concurrent use. Updater functions passed to it run inside a write
// transaction and must not call back into the Store: with SQLite's single
// writer connection that would wait on itself.
type Store struct {
	log     *slog.Logger
	dialect dialect
	// db serves reads outside transactions. For SQLite it is a pool of
	// read-only connections that WAL lets run beside the writer; for
	// PostgreSQL it is the same pool as writer.
	db *sql.DB
	// writer runs every write. For SQLite it holds a single connection, so
	// writers queue in Go rather than poll on SQLITE_BUSY, and its
	// transactions BEGIN IMMEDIATE, so a read-modify-write never has to
	// upgrade a read lock (the classic SQLite writer deadlock).
	writer *sql.DB
}

var _ store.Store = (*Store)(nil)

// Open connects to the database cfg names and brings its schema up to date.
// A nil log discards messages.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sqlstore: open: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: log}
	var err error
	switch cfg.Driver {
	case DriverSQLite:
		err = s.openSQLite(cfg.DSN)
	case DriverPostgres:
		err = s.openPostgres(cfg.DSN)
	}
	if err == nil {
		err = migrate(ctx, s.writer, s.dialect, log)
	}
	if err == nil {
		err = s.Ping(ctx)
	}
	if err != nil {
		if s.writer != nil {
			s.close()
		}
		return nil, fmt.Errorf("sqlstore: open: %w", err)
	}
	return s, nil
}

func (s *Store) openSQLite(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return err
	}
	busy := fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds())
	// A file: URI with an escaped path keeps '?' or '#' in a directory name
	// from being read as the start of the parameters.
	base := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?"
	// synchronous=NORMAL is the usual WAL pairing: a crash of the process
	// loses nothing, a power cut may lose the last transactions.
	writerDSN := base + url.Values{
		"_pragma": {busy, "foreign_keys(1)", "journal_mode(WAL)", "synchronous(NORMAL)"},
		"_txlock": {"immediate"},
	}.Encode()
	readerDSN := base + url.Values{
		"_pragma": {busy, "query_only(1)"},
	}.Encode()

	s.dialect = sqliteDialect()
	if s.writer, err = sql.Open("sqlite", writerDSN); err != nil {
		return err
	}
	s.writer.SetMaxOpenConns(1)
	if s.db, err = sql.Open("sqlite", readerDSN); err != nil {
		return err
	}
	s.db.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	s.log.Info("opening store", "driver", DriverSQLite, "path", abs)
	return nil
}

func (s *Store) openPostgres(dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	s.dialect = postgresDialect()
	if cfg.ConnectTimeout == 0 {
		// Without a bound, a database host that drops packets holds every
		// request until its caller gives up; with one it fails fast.
		cfg.ConnectTimeout = postgresConnectTimeout
	}
	s.writer = sql.OpenDB(unavailableConnector{stdlib.GetConnector(*cfg)})
	s.writer.SetMaxOpenConns(postgresMaxConns)
	// Keep the pool warm: with database/sql's default of 2 idle connections
	// a burst (devices reconnecting after a node failed) opened and closed a
	// PostgreSQL session per request — 5,342 sessions for 20,000 connects in
	// the scale benchmark. Idle ones are closed after a while.
	s.writer.SetMaxIdleConns(postgresMaxConns)
	s.writer.SetConnMaxIdleTime(postgresMaxIdleTime)
	s.db = s.writer
	// The DSN may carry a password, so only its harmless parts are logged.
	s.log.Info("opening store", "driver", DriverPostgres, "host", cfg.Host, "port", cfg.Port, "database", cfg.Database)
	return nil
}

// unavailableConnector marks failures that mean PostgreSQL cannot be
// reached with store.ErrUnavailable, so that while the server is
// restarting, failing over or away requests answer "retry later" (503)
// instead of an internal error: a failed connect (database/sql connects
// whenever its pool has no usable connection), and a statement on a pooled
// connection the server has ended (57P01 after a fast shutdown) or that
// broke under it.
type unavailableConnector struct{ driver.Connector }

func (c unavailableConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	if sc, ok := conn.(*stdlib.Conn); ok {
		return unavailableConn{sc}, nil
	}
	return conn, nil
}

// unavailableConn is a pgx connection whose statement errors are marked
// by markUnavailable; everything else is the embedded connection's.
type unavailableConn struct{ *stdlib.Conn }

func (c unavailableConn) markUnavailable(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-57P03: the server is
		// shutting down, crashed, or not accepting connections yet.
		if strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" {
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	if c.Conn.Conn().IsClosed() {
		// The statement broke the connection (EOF, reset): the server went
		// away under it.
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

func (c unavailableConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.Conn.PrepareContext(ctx, query)
	return st, c.markUnavailable(err)
}

func (c unavailableConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.BeginTx(ctx, opts)
	return tx, c.markUnavailable(err)
}

func (c unavailableConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	r, err := c.Conn.ExecContext(ctx, query, args)
	return r, c.markUnavailable(err)
}

func (c unavailableConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	r, err := c.Conn.QueryContext(ctx, query, args)
	return r, c.markUnavailable(err)
}

// Settings implements store.Store.
func (s *Store) Settings() store.Settings { return settings{s} }

// Resources implements store.Store.
func (s *Store) Resources() store.Resources { return resources{s} }

// Operations implements store.Store.
func (s *Store) Operations() store.Operations { return operations{s} }

// Principals implements store.Store.
func (s *Store) Principals() store.Principals { return principals{s} }

// Devices implements store.Store.
func (s *Store) Devices() store.Devices { return devices{s} }

// Ping reports whether both the read and the write side reach the database.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.writer.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	if s.db != s.writer {
		if err := s.db.PingContext(ctx); err != nil {
			return fmt.Errorf("sqlstore: ping: %w", err)
		}
	}
	return nil
}

// Close releases the connections. Close waits for queries in flight.
func (s *Store) Close() error {
	if err := s.close(); err != nil {
		return fmt.Errorf("sqlstore: close: %w", err)
	}
	return nil
}

func (s *Store) close() error {
	var errs []error
	if s.db != nil && s.db != s.writer {
		errs = append(errs, s.db.Close())
	}
	errs = append(errs, s.writer.Close())
	return errors.Join(errs...)
}

// dialect holds what differs between the databases beyond the schema files.
// Queries are written once with $n placeholders, which both drivers bind
// (modernc's SQLite binds $n to the n-th argument).
type dialect struct {
	name string
	// forUpdate ends a SELECT that a read-modify-write transaction will
	// write back. SQLite needs none: BEGIN IMMEDIATE already holds the
	// database's only write lock.
	forUpdate string
	// forKeyShare ends a SELECT that only needs the row to stay (not be
	// deleted or re-keyed) until the transaction ends, without blocking
	// other transactions that do the same. SQLite needs none, as above.
	forKeyShare string
	// migrationLock runs first in the migration transaction so that nodes
	// starting together apply each migration once; empty when the
	// transaction alone already excludes other writers.
	migrationLock string
	// uniqueViolation reports whether err is a unique index refusing a
	// write. Writes prefer ON CONFLICT DO NOTHING and the row count; this
	// is for an UPDATE, which has no ON CONFLICT.
	uniqueViolation func(err error) bool
	// param is the placeholder of the n-th argument (from 1), for
	// statements with many arguments. SQLite finds a numbered one's name
	// by walking a list of them, which for thousands of arguments costs
	// more than the statement's work; its plain "?" needs none, but takes
	// the arguments in the order the placeholders appear in the text.
	param func(n int) string
	// customPlans, run first in a transaction, makes it plan every
	// statement for its arguments. PostgreSQL otherwise settles on one
	// generic plan per prepared statement (pgx prepares each statement
	// once per connection), and a plan made while a table was nearly
	// empty scans it whole once it is large, until autovacuum's next
	// ANALYZE. Bulk writes, which grow tables fastest, run it; empty when
	// plans are never cached across statements.
	customPlans string
	// retryable reports whether err aborted the transaction only because
	// of its timing with another one (a deadlock between row locks), so
	// running it again may succeed. SQLite's single writer has no such
	// errors.
	retryable func(err error) bool
	// afterBulkLoad is the maintenance that follows a bulk load of the
	// devices table (AfterBulkLoad). PostgreSQL's VACUUM (ANALYZE) sets
	// the visibility map that count(*)'s index-only scan needs and the
	// hint bits every later read would otherwise write, and gives the
	// planner row counts; autovacuum does the same eventually, unless an
	// installation turned it off. It never blocks reads or writes (it
	// can't run inside a transaction). SQLite's PRAGMA optimize analyzes
	// the tables whose statistics are missing or stale, sampling at most
	// analysis_limit rows of each index so the writer is not held long.
	afterBulkLoad string
}

// forUpdateOf is forUpdate for a SELECT that joins table with other rows
// (such as a VALUES list): only table's rows can, and need to, be locked.
func (d dialect) forUpdateOf(table string) string {
	if d.forUpdate == "" {
		return ""
	}
	return d.forUpdate + " OF " + table
}

func sqliteDialect() dialect {
	return dialect{
		name:            DriverSQLite,
		param:           func(int) string { return "?" },
		uniqueViolation: sqliteUniqueViolation,
		retryable:       func(error) bool { return false },
		// 0x10002: also analyze tables never analyzed before, the
		// state of a registry that was empty until the import.
		afterBulkLoad: "PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002",
	}
}

func sqliteUniqueViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// migrationLockKey is the advisory-lock key that serialises migrations:
// "outpost" in ASCII.
const migrationLockKey = 0x6f7574706f7374

func postgresDialect() dialect {
	return dialect{
		name:            DriverPostgres,
		forUpdate:       " FOR UPDATE",
		forKeyShare:     " FOR KEY SHARE",
		migrationLock:   fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockKey),
		param:           func(n int) string { return "$" + strconv.Itoa(n) },
		customPlans:     "SET LOCAL plan_cache_mode = force_custom_plan",
		uniqueViolation: postgresUniqueViolation,
		retryable:       postgresRetryable,
		afterBulkLoad:   "VACUUM (ANALYZE) devices",
	}
}

// SQLSTATE codes the dialect reads.
const (
	postgresUniqueViolationCode = "23505" // unique_violation
	postgresDeadlockCode        = "40P01" // deadlock_detected
	postgresSerializationCode   = "40001" // serialization_failure
)

func postgresUniqueViolation(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == postgresUniqueViolationCode
}

func postgresRetryable(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && (e.Code == postgresDeadlockCode || e.Code == postgresSerializationCode)
}

// inTx runs fn in a write transaction and commits when fn succeeds. The
// deferred rollback also covers a panicking updater: with SQLite's single
// writer connection, a transaction left open would stop every later write.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// now is the time stamped on writes, cut to the microsecond the schema keeps
// so that what Put returns equals what Get reads back.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Times are stored as Unix microseconds; the zero time is stored as 0 so
// "not yet" (Operation.EndTime) survives a round trip.
func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// JSON documents are stored verbatim as text; nil is stored as NULL.
func jsonArg(raw json.RawMessage) any {
	if raw == nil {
		return nil
	}
	return string(raw)
}

func jsonValue(text sql.NullString) json.RawMessage {
	if !text.Valid {
		return nil
	}
	return json.RawMessage(text.String)
}

// newETag returns a random version-4 UUID, the shape ARM etags have, without
// the quotes HTTP adds.
func newETag() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// rowScanner is what the scan functions need of *sql.Row and *sql.Rows.
type rowScanner interface{ Scan(...any) error }

// queryAll runs a query and scans every row with scan; op names the
// operation in errors.
func queryAll[T any](ctx context.Context, db *sql.DB, op string, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: %s: %w", op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	return out, nil
}
