//go:build !unix

package app

// openFileLimit is unknown here: device connections are not capped by
// default.
func openFileLimit() (uint64, bool) { return 0, false }
