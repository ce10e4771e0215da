// Package storetest is the conformance suite for store.Store. Every backend
// runs the same tests through Run, so the contract is written down once, as
// executable checks, and a backend's own test file is a few lines that say
// how to get an empty database.
//
// Beyond the plain behaviour of each method the suite covers what backends
// get wrong: case-insensitive ids, updater errors passing through unchanged,
// subtree deletes that must not catch siblings sharing a prefix or names
// holding LIKE wildcards, lost updates and double creates under concurrent
// writers (including two principals racing for one app id or user name),
// ordering that must be bytewise rather than linguistic, and data outliving
// Close. For device registries it adds case-sensitive ids, modules that
// must not outlive their device (also when a delete races their creates),
// etags that change independently, and bulk writes whose entries fail alone
// while the batch commits or fails as a whole.
package storetest
