// Package app is Outpost's composition root. New opens the data directory,
// the local CA, the store and the bus, creates the installation on first
// start, builds the domain services and binds the HTTPS listener; Run owns
// every goroutine (server, operation runner) and shuts them down within the
// configured timeout. Tests start Outpost in process through the same two
// calls.
package app
