// Package bus is Outpost's message bus: NATS JetStream, reached through the
// nats.go client only.
//
// Open starts one of two modes and everything after it is the same code:
//
//   - Embedded (Config.URL empty, the default): an in-process nats-server with
//     JetStream on file storage in Config.StoreDir, no network listener and no
//     signal handlers, its log routed to our *slog.Logger, and the client
//     connected through nats.InProcessServer. Messages survive Close and Open
//     with the same StoreDir.
//   - External (Config.URL set): a client connection to a NATS server or
//     cluster that keeps reconnecting forever; Ready reports the outage.
//
// # Names
//
// Every installation (and every test) on a shared server owns one prefix P,
// Config.StreamPrefix. Names handed to Bus methods are logical; the Bus applies
// P exactly once:
//
//	stream  "telemetry"             -> "P_telemetry"        (Stream)
//	subject "telemetry", "hub", ">" -> "P.telemetry.hub.>"  (Subject)
//
// EnsureStream maps its Name with Stream and each of its Subjects with
// Subject (no Subjects means the single subject Subject(Name), mirroring
// JetStream's own default). Publish maps its subject with Subject. The raw
// handles, JetStream and Conn, take physical names: build them with Stream
// and Subject. P may not contain '_' or '.', so the first '_' of a stream
// name and the first token of a subject always end the prefix, and two
// prefixes never claim each other's streams or subjects.
//
// # Lifecycle
//
// Open returns once JetStream has answered a request. Publish returns after
// JetStream acknowledged the message: stored by every replica of a
// clustered stream, or written to the embedded server's files, which
// nats-server fsyncs every two minutes by default (a process crash loses
// nothing, a power cut may). Ready is the /readyz probe. Close drains
// the connection, then shuts the embedded server down; when its context ends
// first, Close forces the connection closed and returns the context's error,
// and a later Close waits for the rest of the shutdown.
package bus
