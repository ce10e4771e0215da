// Package testenv gives tests the services a tier needs: a fresh PostgreSQL
// database, an external NATS server, root for binding loopback addresses.
// When a service is missing, the test is skipped on a laptop and fails when
// CI=true, so a CI run can never pass by skipping a tier.
package testenv
