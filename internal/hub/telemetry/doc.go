// Package telemetry is each hub's device-to-cloud stream on JetStream: one
// file-backed stream per hub, one subject per partition (the hub's
// partitionCount; a device always lands on the same partition), messages
// stamped with IoT Hub's system properties. Publish returns only after
// JetStream has stored the message, so a device's QoS 1 PUBACK (or HTTP 204)
// means the message is durable. The built-in "events" endpoint is the
// stream's events.{partition} subjects; a hub with routes stores device
// messages on route.{partition} instead, for its router to decide where
// they go (see Path). The non-telemetry events (twin change, lifecycle,
// connection state) are stored on route.{source}; the router reads
// route.*.
package telemetry
