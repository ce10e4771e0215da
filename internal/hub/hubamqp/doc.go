// Package hubamqp is the IoT hub's AMQP 1.0 surface: the amqp.Handler for
// connections to a hub's host name ({hub}.{suffix}, or a bare IP address or
// localhost for the only hub), as the azure-iothub service SDK and the
// azure-iot-device-amqp device SDK (AMQP over TLS and over WebSocket) use it.
//
// Authentication. The Node SDKs skip SASL and put tokens on $cbs:
//
//   - a service token: audience the hub's host name and a shared access
//     policy's SAS, or audience https://iothubs.azure.net/.default and an
//     Entra bearer token, checked by serviceapi.ServiceAuth (the HTTPS
//     service API's own rules). Each attach is then authorized against the
//     hub's current policies or role assignments (ServiceConnect, or the IoT
//     Hub data action of the operation);
//   - a device token: audience {host}/devices/{id}[/modules/{m}], URL-encoded
//     or not, checked by deviceauth as MQTT and HTTPS devices are (device
//     key, or a DeviceConnect policy; disabled devices refused). A device
//     may attach only to its own paths.
//
// Claims expire with their tokens, and the engine then detaches the links
// they authorized. X.509 devices present a TLS client certificate and put no
// token: their attach is authenticated from the certificate. SASL PLAIN
// works too, as IoT Hub documents it: user {policy}@sas.root.{hub} or
// {deviceId}@sas.{hub}, password a SAS token.
//
// Service endpoints:
//
//   - /messages/devicebound (the client sends): each message's `to` names a
//     device (or module); it is queued on the c2d queue, accepted once
//     JetStream stored it, or rejected with amqp:not-found (no such device)
//     or amqp:resource-limit-exceeded (50 queued), or
//     amqp:link:message-size-exceeded (over 64 KB);
//   - /messages/serviceBound/feedback (the client receives): batches of
//     cloud-to-device feedback records, settled by the disposition
//     (accepted completes, released or modified abandons, rejected drops);
//   - /messages/serviceBound/filenotifications: file upload notifications,
//     settled the same way.
//
// Device endpoints:
//
//   - /devices/{id}[/modules/{m}]/messages/events (the device sends):
//     telemetry, stored exactly as MQTT and HTTPS telemetry is (the hub's
//     publisher: routing path, throttling, the connection's system
//     properties) and accepted only once JetStream stored it;
//   - /devices/{id}/messages/devicebound (the device receives; for modules
//     .../modules/{m}/messages/devicebound or .../messages/events, where the
//     module SDK listens): cloud-to-device messages, unsettled, with the
//     device's disposition settling them (accepted completes, rejected
//     rejects, released or modified abandons);
//   - /devices/{id}[/modules/{m}]/twin, a sender and a receiver link: GET,
//     PATCH /properties/reported, PUT and DELETE
//     /notifications/twin/properties/desired (operation and resource
//     message annotations), answered on the receiver link with the request's
//     correlation-id and a status annotation; while subscribed, desired
//     property updates arrive on it without a correlation-id (DesiredChanged,
//     a registry twin-change hook);
//   - /devices/{id}[/modules/{m}]/methods/devicebound, a receiver and a
//     sender link: SendMethod (a devicemqtt.MethodTransport, tried for
//     devices not listening over MQTT) sends a request with
//     IoThub-methodname and a uuid correlation-id; the device answers on its
//     sender with that correlation-id and IoThub-status.
//
// Concurrency: the engine calls Receive and dispositions' OnOutcome on the
// connection's reader, which must not block. Every link therefore hands its
// work to a serial executor: one goroutine per link, started with the link
// and ended with it (after the settlements already handed over have run),
// which keeps each link's settlements in order. Twin and method receiver
// links register a channel (a queue of messages to send) by device while
// they last; the Handler's channels hold them (one mutex, never held while
// sending).
package hubamqp
