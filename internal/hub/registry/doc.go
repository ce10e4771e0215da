// Package registry is a hub's device registry: device and module
// identities (keys generated when empty, status, X.509 thumbprint or CA
// authentication, etags), their twins (tags, desired and reported
// properties with versions), registry statistics and the registry query
// (SELECT … FROM devices WHERE …). It works on store.Devices and knows
// nothing of HTTP or MQTT; the service API and the device endpoints are
// adapters over it.
package registry
