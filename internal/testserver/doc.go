// Package testserver starts Outpost for tests: in process (Start) or as the
// built binary in a subprocess (StartProcess, for kill -9 and restart
// tests). Real device SDKs need port 443 (and later 8883, 5671) on the host
// named in a connection string, so each server binds a loopback address of
// its own (127.0.x.y) and, when asked, maps host names to it in /etc/hosts,
// removing its lines on cleanup; tests in parallel packages never fight over
// 443. Options select the tier: embedded SQLite + NATS by default, or a
// fresh PostgreSQL database and an external NATS with a private stream
// prefix. StartPeer (in process) and StartPeerProcess (the binary) start
// another node of a server's installation: the same database, NATS, stream
// prefix and CA, a data directory and address of its own.
package testserver
