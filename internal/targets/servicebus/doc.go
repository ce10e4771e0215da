// Package servicebus is the Service Bus REST data plane on
// {namespace}.servicebus.{suffix}, backed by JetStream.
//
// A request flows: Host (or, in path-style mode, the first path segment) →
// namespace view (directory: the namespace, its entities, authorization
// rules, subscription rules and network rules read from the store and
// cached until the ARM types report a change or CacheTTL passes) → route
// (send, receive, settle; the entity, its $DeadLetterQueue) → authorize (SAS
// with a namespace- or entity-level rule's key and the Send/Listen right,
// refused when disableLocalAuth; or Bearer through access.Checker: token for
// https://servicebus.azure.net, RBAC data action at the entity's ARM id) →
// network rules (access.Admit) → the operation.
//
// Broker keeps messages in one work-queue stream per namespace, two
// subjects per queue or subscription (active, dead-letter) and a durable
// pull consumer on each with AckWait = lockDuration. A topic send evaluates
// every subscription's rules (sqlfilter, correlation filters) and publishes
// one copy per match before answering 201, so an acknowledged send is
// stored. Receive pulls one message: expired ones are dead-lettered (when
// deadLetteringOnMessageExpiration) or dropped, ones delivered more than
// maxDeliveryCount times are dead-lettered with DeadLetterReason
// MaxDeliveryCountExceeded; the rest are deleted (receive-and-delete) or
// locked under a lock token (peek-lock) held in this node's memory — a
// settlement must reach the node that issued the lock, and a restart
// forgets locks (JetStream redelivers those messages after the lock time).
// Sequence numbers are the stream's, so they increase per entity but are not
// dense; a topic's copies get one per subscription.
//
// Handler.AMQP is the same data plane over AMQP 1.0 (amqp.go maps the
// files): $cbs tokens and SASL PLAIN checked as the REST credentials are,
// senders stored through the same publish as a REST send, receivers on the
// same consumers and locks (a lock token works on either surface), and
// {entity}/$management. An AMQP message is stored in REST's form, with
// what REST cannot express (property types, non-string ids, other body
// sections) kept beside it, so each surface reads the other's messages.
// Over AMQP messages can also be scheduled (JetStream message schedules,
// schedule.go) and deferred (set aside for receipt by sequence number,
// defer.go); REST refuses ScheduledEnqueueTimeUtc.
//
// Handler implements sbresource.Runtime and sbresource.Counter: pass it as
// the ARM types' Runtime. Run sweeps expired locks; the app owns it.
package servicebus
