// Package hub is the IoT hub's runtime: the directory of hubs (host name →
// hub, its shared access policies and settings, read from the IotHubs
// resources the control plane stores) and the service-side authorization
// every data-plane request goes through — shared access policy SAS tokens
// (rights RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect) or
// Entra bearer tokens for https://iothubs.azure.net authorized by the IoT
// Hub data roles.
//
// Subpackages: sas (tokens), registry (devices, modules, twins, query),
// serviceapi (the service REST surface), mqtt (the device protocol),
// hubresource (the ARM resource type).
package hub
