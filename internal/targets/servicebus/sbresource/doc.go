// Package sbresource holds the Microsoft.ServiceBus ARM resource types:
// namespaces (tracked, long-running, identity block, global names shared
// with Event Hubs), their authorization rules at namespace, queue and topic
// level (keys generated at creation, listKeys/regenerateKeys, hidden from
// GET), queues, topics, subscriptions, subscription rules (SqlFilter or
// CorrelationFilter, validated with sqlfilter) and the namespace's "default"
// network rule set, readable before it is written.
//
// Flow: the arm framework calls Prepare (validate, fill Service Bus's
// defaults, no side effects), stores the document, then Provision, which
// tells the data plane through Runtime (a stream per namespace, consumers
// per queue and subscription) and creates what Azure creates implicitly —
// RootManageSharedAccessKey for a new namespace and the $Default rule for
// a new subscription — marked by a create flag Prepare sets so a repeated
// Provision after a crash does not recreate something the user deleted.
// The data plane reads the stored documents back with DecodeSettings,
// DecodeAuthRule, DecodeRule and DecodeNetworkRules, so the schema lives in
// one place.
package sbresource
