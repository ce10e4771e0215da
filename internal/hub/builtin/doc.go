// Package builtin serves a hub's built-in Event Hubs-compatible endpoint
// over AMQP (ehamqp.Backend): iothub-ns-{hub}.servicebus.{suffix}, event
// hub {hub}, the hub's partitions and consumer groups, read-only. It is
// what every quickstart's EventHubConsumerClient reads device telemetry
// from, with the connection string az prints
// (`az iot hub connection-string show --default-eventhub`).
//
// Sequence numbers and offsets are the hub stream's sequence minus one:
// increasing within a partition, but with gaps (the hub's partitions share
// one stream). Clients treat both as opaque positions.
package builtin
