// Package accesstest builds the real identity stack — a SQLite store, the
// tenant's signing keys, the token issuer and validator, the RBAC engine —
// behind an access.Checker, so data-plane tests exercise Bearer tokens,
// role assignments and network rules exactly as the running app does.
package accesstest
