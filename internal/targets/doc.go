// Package targets holds the services the hub's egress reaches — blob
// storage, Event Hubs and Service Bus — each an ARM resource type and a data
// plane in its own subpackage, with one access checker (access) that every
// data plane consults:
//
//	storage/    Microsoft.Storage/storageAccounts (+ containers, listKeys)
//	blob/       the Blob service REST data plane, blobs on disk
//	eventhubs/  Microsoft.EventHub/namespaces (+ eventhubs, consumer groups) and REST send on JetStream
//	servicebus/ Microsoft.ServiceBus/namespaces (+ queues, topics, subscriptions) and REST on JetStream
//	access/     Bearer token → RBAC data action at the entity scope → network rules
package targets
