// Package mqtt is the hub's MQTT 3.1.1 device endpoint: the closed topic space of Azure IoT Hub,
// served so that unmodified Azure IoT device SDKs connect to it on 8883 (TLS) and on
// /$iothub/websocket (MQTT over WebSocket on 443). It is not a general broker: devices talk to
// the hub only, on the topics IoT Hub documents.
//
// # Flow
//
//	TLS handshake ─ CONNECT ─ Authenticator ─ CONNACK      (all within Config.ConnectTimeout)
//	  client id "{device}" or "{device}/{module}"; user name "{host}/{client id}/?api-version=…"
//	  must name the same device; password is a SAS token, or peer certificates for X.509.
//	  A second connection for the same device key takes over: the first is closed.
//
//	device → hub (PUBLISH; anything else closes the connection)
//	  devices/{d}[/modules/{m}]/messages/events/{bag}      Handler.Telemetry, then PUBACK
//	  $iothub/twin/GET/?$rid={rid}                          Handler.TwinGet → $iothub/twin/res/{status}/?$rid={rid}
//	  $iothub/twin/PATCH/properties/reported/?$rid={rid}    Handler.TwinReported → …/res/204/?$rid={rid}&$version={v}
//	  $iothub/methods/res/{status}/?$rid={rid}              Handler.MethodResponse
//
//	hub → device (Server.Deliver, to a device that subscribed to the matching filter)
//	  devices/{d}/messages/devicebound/{bag}                C2D, QoS 1; Delivery.Acked on PUBACK
//	  $iothub/twin/PATCH/properties/desired/?$version={v}   desired-properties patch
//	  $iothub/methods/POST/{name}/?$rid={rid}               direct method request
//
// Subscriptions other than devices/{d}/messages/devicebound/#, $iothub/twin/res/#,
// $iothub/twin/PATCH/properties/desired/#, $iothub/methods/POST/# (and for modules
// devices/{d}/modules/{m}/# and …/inputs/#) get SUBACK 0x80. A persistent session (clean=false,
// what the SDKs send) keeps its subscriptions in memory across connections.
//
// A QoS 1 telemetry message is acknowledged only after Handler.Telemetry returns nil, so the hub
// persists it first. The connection's Handler calls run on one goroutine at a time in arrival
// order; a bounded read-ahead queue lets the reader keep answering PINGREQ and PUBACK meanwhile,
// and a bounded write queue batches frames into few flushes. The worker and writer goroutines
// exist only while their queues hold something, and the read buffer is borrowed per packet, so
// an idle connection is one goroutine and its TLS state (conn.go).
//
// # Limits
//
// Packets larger than Config.MaxPacketSize close the connection before their body is read, and a
// body's buffer grows only with the bytes that actually arrive; a payload larger than
// Config.MaxMessageSize (IoT Hub's 256 KiB) closes it too. The read timeout is 1.5 × the
// client's keep-alive, capped at Config.MaxKeepAliveTimeout; the connection ends when the
// identity's ExpiresAt (the SAS token's se) passes.
//
// # Locks
//
// Server.mu, conn.mu, conn.wmu and session.mu are never held together, with one exception:
// Server.mu is held while register sets conn fields and queues the CONNACK, and then conn.wmu
// and conn.mu are each taken briefly (Server.mu → conn.wmu, Server.mu → conn.mu). No code takes
// Server.mu while holding conn.mu, conn.wmu or session.mu.
package mqtt
