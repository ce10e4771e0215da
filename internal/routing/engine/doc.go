// Package engine is IoT Hub message routing's delivery engine: it moves
// each hub's device messages and events to the custom endpoints its routes
// select — Event Hubs, Service Bus queues and topics, storage containers —
// with the hub's managed identity or a connection string.
//
// Flow, per hub:
//
//  1. Configuration. Reload(hub) reads the stored Microsoft.Devices/IotHubs
//     document (properties.routing, the built-in endpoint's partition count
//     and retention) and compiles a Plan once: endpoints with their
//     credentials, routes grouped by source with their conditions compiled
//     once (Config.Compile), the fallback route, enrichments per endpoint.
//  2. Routing. Routers read the hub's telemetry stream (hub-{name}): one per
//     partition for the device messages stored for it on route.{partition}
//     (see telemetry.Path: a hub whose settings send every device message
//     to the built-in endpoint stores them there directly), and one per
//     event source for the twin change, lifecycle and connection state
//     events on route.{source}. Each reads through its own durable consumer
//     (router-{partition}, router-{source}), created with the stream
//     (EnsureRouter), and runs on the one node Config.Owns gives its slot.
//     For each message a router evaluates the enabled routes of the
//     message's source; each matching custom endpoint gets a copy — with
//     the endpoint's enrichments as application properties — appended to
//     the hub's routing queue (stream routing-{name}, subject
//     routing.{name}.{endpoint}.{partition}). A device message no route
//     matched takes the fallback route when it is enabled. A copy for the
//     built-in endpoint is stored on the hub stream's events.{partition},
//     which is what the built-in endpoint's readers read — so once routes
//     exist, only what a route to "events" or the fallback route takes
//     reaches it, as in IoT Hub. The source message is acknowledged only
//     after every copy is stored.
//  3. Delivery. One worker per endpoint and partition, on the node that
//     routes the partition, reads its subject in order through
//     its own durable consumer, sends REST batches (≤ 100 messages,
//     ≤ 256 KB) to Event Hubs / Service Bus, or collects a window per
//     partition for storage (batchFrequencyInSeconds, maxChunkSizeInBytes)
//     and uploads it as one Avro container file or JSON lines blob named by
//     fileNameFormat. A message is acknowledged on the queue only after the
//     target accepted it. Failures are retried with exponential backoff
//     (RetryBase doubling to RetryMax) while the messages stay held; the
//     endpoint's health goes degraded, then unhealthy (UnhealthyAfter /
//     UnhealthyAttempts), then dead (DeadAfter), each with the target's
//     refusal as the last error; the queue keeps everything for the hub's
//     retention.
//
// Guarantees. At least once: nothing is acknowledged upstream before it is
// stored downstream, so a crash can only repeat a batch (the router's
// re-queued copies are dropped by JetStream's duplicate window; a re-sent
// Event Hubs / Service Bus batch or storage window can arrive twice).
// Ordered per partition: the routers and workers hold at most one batch
// unacknowledged (MaxAckPending), so after a crash the held batch comes
// back before anything newer; Event Hubs batches carry the device id as
// partition key.
//
// Several nodes. Config.Owns (throttle.Membership.Owns in the app) gives
// each slot of a hub — its partitions, then its event sources — to one
// live node, spread evenly; the node that routes a partition also delivers
// it. A node checks before each batch, so when membership changes a slot
// moves within a heartbeat or two (throttle.PeerTTL for a node that
// died), and a dead node's held batch comes back after the consumer's
// AckWait. While two nodes' views differ both may read a slot; the
// consumer's one-batch limit still hands its messages out one batch at a
// time, in order, so the overlap costs throughput, never order or
// messages. A storage worker that loses its partition writes the windows
// it holds before it stops.
//
// Credentials. Identity-based endpoints use the hub's system-assigned
// identity, or identity.userAssignedIdentity, through Config.Tokens with the
// service's audience; tokens are cached per (identity, audience) until
// TokenRefreshMargin before their exp claim and never logged
// (TokenRequests and TokenRequestCounts count the requests; the app exports them as
// outpost_routing_token_requests_total). Key-based endpoints sign an Event
// Hubs / Service Bus SAS with the connection string's key (the key string's
// bytes are the HMAC key) or use the storage account's shared key. Every
// request goes through Config.Egress and speaks only the public REST
// protocols, so an endpoint may point at Outpost, Azurite or Azure.
//
// History. Each hub keeps MetricsBuckets buckets of MetricsBucket
// (history.go): the messages each route matched (an atomic counter per
// route; the router takes no lock per message), the messages each endpoint
// delivered, its failed attempts and its health at the bucket's end.
// Buckets close when a router batch, a send or Metrics notices the clock
// passed a boundary, so no goroutine ticks for them. The history is this
// process's only: each node of an installation reports its own.
//
// Lifecycle: New starts nothing; Run owns every goroutine and returns when
// its context ends; Reload and RemoveHub only queue work for Run.
package engine
