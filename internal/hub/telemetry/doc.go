// Package telemetry is each hub's device-to-cloud stream on JetStream: one
// file-backed stream per hub, one subject per partition (the hub's
// partitionCount; a device always lands on the same partition), messages
// stamped with IoT Hub's system properties. Publish returns only after
// JetStream has stored the message, so a device's QoS 1 PUBACK (or HTTP 204)
// means the message is durable. The built-in "events" endpoint, routing and
// the AMQP Event Hubs surface all read from here.
package telemetry
