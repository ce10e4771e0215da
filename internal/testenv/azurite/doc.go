// Package azurite holds what the tests that run Azurite (the Azure Storage
// emulator from test/clients/node_modules) as a peer of Outpost's blob
// service share: its development account, the environment to start it in,
// and the throwaway loopback certificate it serves HTTPS with. Starting the
// process stays with each caller, which waits for it in its own way (the
// e2e suite reads its log, the benchmarks probe it like every server they
// time).
package azurite
