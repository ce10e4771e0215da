// Package cli is the `outpost` command line: `serve` runs a node, `env`
// prints the shell lines that make Azure SDKs and az trust and find it.
// Client commands (as they land) speak to the public APIs, never the store.
// Configuration precedence for serve: defaults < --config file < OUTPOST_*
// environment variables < flags.
package cli
