// Package amqp is Outpost's AMQP 1.0 server: connections (protocol
// headers, SASL ANONYMOUS / PLAIN / MSSBCBS / EXTERNAL, open, heartbeats,
// close), sessions (channels, delivery ids, the session windows), links
// (attach and detach, link credit and drain, multi-frame transfers,
// settlement in both receiver settle modes) and the request/response
// nodes the Azure SDKs use: claims-based security on $cbs (put-token, with
// a claim's expiry enforced on the links it authorized) and the
// $management nodes, whose replies are routed the way the Go, JavaScript
// and Node IoT clients each expect (docs/architecture.md).
//
// What an address means is not this package's business: a Handler
// resolves each attach to an Inbound link (the client sends; every
// complete message is handed over as a Delivery to settle), an Outbound
// link (the client receives; the handler's Run sends as credit allows) or
// an RPC node. The wire format lives in package wire.
//
// Concurrency: each connection has a reader goroutine, which owns frame
// parsing and dispatch, and a writer goroutine, which owns the socket's
// write side and the heartbeats. Link and session state is guarded by the
// connection's mutex; handlers send and settle from their own goroutines.
package amqp
