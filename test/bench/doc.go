// Package bench holds benchmarks that compare Outpost with the emulators it
// replaces, and with its own other paths: start-up time (exec to the first
// ready answer), idle memory, blob upload and download throughput through
// the Go azblob client, the CLI round trip, and AMQP receive and send
// throughput with the Event Hubs SDKs (each AMQP case preloads 200,000
// events: run those with -benchtime 1x, see docs/benchmarks.md).
// They only produce figures for docs/benchmarks.md; nothing asserts them,
// and plain `go test ./...` runs none of them. Run them side by side in one
// invocation, because the figures that matter are ratios on the same
// machine at the same moment:
//
//	go test -run x -bench 'Blob|Start|IdleRSS' -benchtime 20x ./test/bench/
//	go test -run '^$' -bench AMQP -benchtime 1x -timeout 40m ./test/bench/
//
// Outpost is the binary built from ./cmd/outpost (or OUTPOST_BINARY);
// Azurite is the one installed in test/clients/node_modules, and its
// benchmarks are skipped when it or node is missing.
package bench
