// Package devicemqtt is the hub's side of device connections: it
// authenticates CONNECTs with deviceauth, turns telemetry into durable
// stream messages (the PUBACK waits for JetStream), keeps connection state,
// answers twin requests from the registry, pushes desired-property changes
// to connected devices, and runs direct methods (service call → method
// request on the device → its response, with a timeout).
package devicemqtt
