// Package ehamqp is the Event Hubs AMQP protocol over any Event Hubs-shaped
// store: the addresses ({eventhub}, {eventhub}/Partitions/{p},
// {eventhub}/ConsumerGroups/{cg}/Partitions/{p}, $management), claims
// checked at attach, senders with batches and partition keys, receivers
// positioned by the selector filter (offset, sequence number, enqueued
// time, @latest) with owner-level (epoch) exclusivity, and the
// $management READ operations, with the exact AMQP types the Go and
// JavaScript SDKs assert (../../../../docs/architecture.md).
//
// Two backends serve it: the embedded event hubs (package eventhubs) and
// an IoT hub's built-in Event Hubs-compatible endpoint (package
// hub/builtin).
package ehamqp
