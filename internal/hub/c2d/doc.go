// Package c2d is the hub's cloud-to-device queue: one JetStream stream per
// hub with a subject per device, at most 50 messages queued per device (IoT
// Hub's limit, refused beyond), a lock (the consumer's ack wait) while a
// device holds a message, redelivery until the hub's maxDeliveryCount, and
// expiry by the message's TTL. Devices take messages over MQTT (pushed to a
// connected, subscribed device; the PUBACK completes the message) or HTTPS
// (receive, then complete, abandon or reject by lock token).
package c2d
