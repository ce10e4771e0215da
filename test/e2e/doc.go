// Package e2e holds end-to-end tests: a real Outpost (in process or as a
// subprocess) driven by unmodified clients — the Azure SDK for Go, the npm
// Azure SDKs through node's test runner, and az. Every test runs on each
// tier from testserver.Tiers.
package e2e
