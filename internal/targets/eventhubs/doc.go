// Package eventhubs is the Event Hubs data plane on JetStream: REST send at
// {namespace}.servicebus.{suffix} (or path-style /{namespace}/… on a port of
// its own) and, in process, Send and Read.
//
// A REST send goes:
//
//  1. Route: the namespace from the Host's first label (Serves tells the app
//     whether a servicebus host is ours or Service Bus's), the event hub and
//     an optional /partitions/{id} or /publishers/{name} from the path.
//  2. Snapshot: the namespace as ehresource stored it (SKU, disableLocalAuth,
//     network rules, SAS rules with keys, event hubs), cached for a short
//     TTL and dropped at once when the control plane changes it on this node.
//  3. Authorize (access): a SAS token signed with the key string of a
//     namespace or event hub rule that grants Send and whose sr covers the
//     event hub (any scheme, host+path compared) — refused when local auth is
//     disabled — or a bearer token for https://eventhubs.azure.net/ whose
//     principal has Microsoft.EventHub/namespaces/messages/send/action at the
//     event hub's ARM id; then the namespace's network rules. Credentials are
//     checked before the event hub's existence is revealed.
//  4. Parse: one event (body, custom properties as headers, BrokerProperties
//     JSON header) or a JSON batch (application/vnd.microsoft.servicebus.json),
//     within the tier's 1 MB / 256 KB limit (413 beyond).
//  5. Partition: explicit partition, else the partition key (the publisher
//     name for /publishers) hashed (PartitionForKey), else one round-robin
//     partition for the whole request.
//  6. Store: every event is published asynchronously to its partition's
//     stream and the request answers 201 only after JetStream acknowledged
//     all of them (pipelined: a batch costs one round trip, not one per
//     event). Nothing answered 201 is lost; a failed request may have stored
//     part of its events (delivery is at least once, as in Event Hubs).
//
// Storage (Streams): one file-backed stream per partition, so a partition's
// sequence numbers are the stream's (minus one: Event Hubs counts from 0),
// gapless and monotonic; the offset is the same number as a string. Enqueued
// time, partition key and publisher are stamped as headers at send; sequence
// number and offset come from the stream at read. Retention is the stream's
// MaxAge.
//
// Read serves the CLI and tests until the AMQP receive path exists. Consumer
// groups must exist but keep no server-side position: every reader passes the
// sequence number to start from.
//
// Errors are the service's XML: <Error><Code>{status}</Code><Detail>… TrackingId:…,
// SystemTracker:{host}:{entity}, Timestamp:…</Detail></Error>.
package eventhubs
