// Package e2e holds end-to-end tests: a real Outpost (in process or as a
// subprocess) driven by unmodified clients — the Azure SDK for Go, the npm
// Azure SDKs through node's test runner, and az. Tests run on the
// embedded tier, and those that prove a tier-specific property on each tier
// from testserver.Tiers.
//
// The fault suite (faults_test.go) and the scale-out tests
// (scaleout_test.go) run in CI in seconds; OUTPOST_FAULTS_LONG=1 runs the
// fault cases at their real durations (a 10-minute endpoint outage with the
// production retry timings), for a local run.
package e2e
