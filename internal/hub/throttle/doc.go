// Package throttle is a hub's quota enforcement: IoT Hub's throttles —
// device-to-cloud messages per hub and per device, registry (device
// identity) operations, twin reads, twin updates and direct methods per
// hub — as token buckets, each off unless configured. Over a rate, work is
// refused with an *Error that matches ErrThrottled (IoT Hub's
// ThrottlingException, 429001) rather than queued, so memory stays bounded
// under overload.
//
// # Several nodes
//
// A hub's quota is the installation's, not a node's. Nodes announce
// themselves on NATS (Membership: a heartbeat every HeartbeatInterval; a
// node not heard from for PeerTTL is gone, a node that stops says so) and
// each node enforces rate ÷ live nodes for the per-hub kinds. The sum over
// the nodes therefore never exceeds the rate (plus one burst per node),
// and it is the whole rate when the hub's load is spread over the nodes,
// as a load balancer spreads device connections. A node that dies stops
// counting after PeerTTL; one that joins counts within a round trip (the
// others answer its first heartbeat with theirs).
//
// The same membership shares work out: Owns ranks the live nodes for a
// group (a hub) by rendezvous hashing and hands slot i (a partition) to
// the node at rank i mod n, so a hub's routing partitions are spread
// evenly and each is worked by one node (internal/routing/engine).
//
// The per-device rate stays per node: a device's MQTT or AMQP connection
// lives on one node, so the device's bucket is that node's.
//
// Buckets are created on first use and dropped when they have been full
// (idle) for a sweep interval, so memory follows the active hubs and
// devices, not every device ever seen.
package throttle
