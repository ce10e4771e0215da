// Package c2d is the hub's cloud-to-device queue: one JetStream stream per
// hub with a subject per device, at most 50 messages queued per device (IoT
// Hub's limit, refused beyond), a lock (the consumer's ack wait) while a
// device holds a message, redelivery until the hub's maxDeliveryCount, and
// expiry by the message's TTL. Devices take messages over MQTT (pushed to a
// connected, subscribed device; the PUBACK completes the message), HTTPS
// (receive, then complete, abandon or reject by lock token) or AMQP (a
// receiver link; the disposition settles).
//
// Feedback: a message sent with iothub-ack positive or full gets a
// "Success" record when completed; negative or full gets "Rejected",
// "Expired" or "DeliveryCountExceeded" when it is dead-lettered. Every
// settlement goes through SettleDelivery, which stores the record on the
// hub's feedback stream (a work queue, one record per stream message, its
// id the settled message's stream sequence so a retried settlement gives
// one record) before settling the message. Expiry and the last lock running
// out are noticed when the message next comes up (the device consumer's
// MaxDeliver is maxDeliveryCount+1; the extra delivery never reaches a
// device). ReceiveFeedback batches the waiting records into one feedback
// message, as IoT Hub does; SettleFeedback completes, abandons or drops
// the batch.
package c2d
