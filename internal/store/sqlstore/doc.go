// Package sqlstore implements store.Store once, over database/sql, for two
// databases: SQLite (modernc.org/sqlite, pure Go) as the zero-config default
// for a single node, and PostgreSQL (pgx) when several nodes share state.
// One implementation keeps the backends from drifting apart; what really
// differs — row locks, the migration lock and column collations — sits in
// a small dialect value and per-dialect migration files.
//
// Writes are read-modify-write transactions: PostgreSQL takes row locks
// with SELECT … FOR UPDATE, SQLite funnels writes through one connection
// whose transactions BEGIN IMMEDIATE, while WAL lets reads run beside it.
// Creating an id two writers race for is settled by INSERT … ON CONFLICT
// DO NOTHING: the loser sees no row written and runs its updater again on
// the winner's row. Settings.Update, whose updater runs once, instead claims
// an absent key with a placeholder row inside its transaction, which makes a
// concurrent claimant wait for it. Without a conflict target, DO NOTHING
// also covers a table's other unique indexes (a principal's app id and user
// name); only an UPDATE that collides with one needs the driver's error
// code, which the dialect reads.
//
// The schema lives in migrations/, embedded and applied in one transaction
// at Open (under a PostgreSQL advisory lock so nodes starting together
// agree). Lookups are case-insensitive through *_key columns holding
// store.Key of each value; deleting a resource removes the key range of its
// subtree, which needs bytewise ordering — hence COLLATE "C" in PostgreSQL.
//
// Device registries (devices.go) are the one aggregate that grows to
// millions of rows per hub: ids are compared bytewise, lists page by key
// (never OFFSET), and PutMany imports a batch in one transaction — a
// loading SELECT, the entries applied in memory, then multi-row INSERTs in
// key order, so that concurrent batches lock rows in one order. A module's
// row relies on its device's: module creates hold a shared lock on the
// device row, and deletes lock device rows before removing modules in a
// later statement, which in PostgreSQL sees every module created meanwhile.
package sqlstore
