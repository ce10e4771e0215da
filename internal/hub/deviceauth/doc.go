// Package deviceauth authenticates devices and modules for every device
// protocol (MQTT, HTTPS, later AMQP): a SAS token signed with the device's
// key (or a policy with DeviceConnect) whose resource covers the device, or
// an X.509 client certificate whose thumbprint is registered (selfSigned).
// A disabled or unknown device, an expired or mis-scoped token, or a hub
// with device SAS disabled is refused with a reason a person can act on.
package deviceauth
