// Package sources turns registry and connection changes into IoT Hub's
// non-telemetry events — twinChangeEvents, deviceLifecycleEvents and
// deviceConnectionStateEvents — with the properties and bodies IoT Hub gives
// them, stored on the hub's stream for routing to deliver.
package sources
