// Package store defines Outpost's persistence contract: the records, the
// sentinel errors and small per-aggregate interfaces that together make up
// Store. Backends live in sqlstore (SQLite by default, PostgreSQL for
// several nodes); storetest holds the conformance suite every backend runs.
//
// Writes that depend on what is stored go through updater functions
// (Resources.Put, Operations.Update): the backend reads the current record,
// calls the function and writes its result in one transaction, so callers
// never race a get-then-put. ARM ETags and If-Match fall out of this: the
// updater compares the stored ETag and returns ErrPreconditionFailed.
package store
