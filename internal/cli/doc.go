// Package cli is the `outpost` command line: `serve` runs a node, `env`
// prints the shell lines that make Azure SDKs and az trust and find it, and
// the client commands speak to the public APIs (never the store), shaped
// like az's: same groups, verbs and flags where az has them.
//
// Conventions for client commands:
//   - newAPIClient finds the server and signs in; getJSON, list, put (waits
//     for long-running operations), remove and post speak ARM.
//   - A command prints its result with emit, which applies --query (JMESPath)
//     and -o json|jsonc|yaml|yamlc|table|tsv|none exactly as az's knack does;
//     a tableTransform gives -o table the columns az's transformer gives.
//   - Errors: requireFlags and usageErrorf for the command line (exit 2),
//     *apiError for the server's answers ("(Code) message"; exit 3 when the
//     resource does not exist), anything else exit 1. Execute prints
//     "ERROR: …" on one line, as az does.
//
// Configuration precedence for serve: defaults < --config file < OUTPOST_*
// environment variables < flags.
package cli
