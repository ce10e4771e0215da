// Package devicemqtt is the hub's side of device connections: it
// authenticates CONNECTs with deviceauth, turns telemetry into durable
// stream messages (the PUBACK waits for JetStream), keeps connection state,
// answers twin requests from the registry, pushes desired-property changes
// to connected devices, and runs direct methods (service call → method
// request on the device → its response, with a timeout). With other nodes
// on the same NATS, the Relay (relay.go) reaches devices connected to them:
// direct methods, desired-property patches and cloud-to-device wake-ups go
// to the node holding the device over core NATS.
package devicemqtt
