// Package ehresource is the Microsoft.EventHub control plane: the ARM
// resource types of an Event Hubs namespace, registered with arm.Registry.
//
//	namespaces                              tracked; sku, identity block (msi), properties with server defaults
//	namespaces/authorizationRules           namespace SAS rules; RootManageSharedAccessKey made at Provision
//	namespaces/networkRuleSets              "default" only; always readable (synthesised until PUT)
//	namespaces/eventhubs                    partitions and retention; Provision creates the JetStream streams
//	namespaces/eventhubs/consumergroups     $Default always exists (never stored)
//	namespaces/eventhubs/authorizationRules entity SAS rules (EntityPath in the connection strings)
//
// Keys live in the rule documents under the private member "keys" and are
// removed from every GET, PUT and list response (Render); listKeys and
// regenerateKeys return them. A PUT keeps the generated keys of an existing
// rule, as Azure does.
//
// Namespace names are host names ({name}.servicebus.{suffix}) shared with
// Service Bus, so they are unique across the installation: Prepare checks
// the Event Hubs namespaces itself and asks Config.NameTaken about the other
// provider; Holds answers the same question for that provider.
//
// The data plane (package eventhubs) reads what these types store through
// LoadNamespace, a snapshot of one namespace: SKU, local-auth switch,
// network rules, SAS rules and event hubs. Every Provision, Deprovision and
// key regeneration calls Config.Changed with the namespace name so the data
// plane drops its cached snapshot at once on this node; other nodes follow
// within the data plane's cache TTL.
//
// Every type answers synchronously (no long-running operations): a
// namespace is ready when its PUT returns. If the process dies between the
// store write and Provision, the data plane creates a missing stream at the
// first send, and the next PUT provisions the rest again.
package ehresource
