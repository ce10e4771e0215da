// Package storage is the control plane of blob storage: the
// Microsoft.Storage ARM types and the lookups the Blob data plane uses.
//
//	storageAccounts                      Accounts (ARM type): name rules, server defaults,
//	                                     identity block (msi), keys kept across PUTs and
//	                                     hidden from GET, listKeys / regenerateKey, and the
//	                                     provider action checkNameAvailability
//	storageAccounts/blobServices         BlobServices: "default" always exists (read from
//	                                     ResourceReader until a PUT stores properties)
//	storageAccounts/blobServices/default/containers
//	                                     ContainerType: the ARM face of a container
//
// One source of truth: a container is only ever an ARM resource record in
// store.Resources. The data plane (package blob) creates and deletes those
// records through Containers, the same helper the ARM type's documents are
// built with, so a container made with az appears to azblob and vice versa.
// Blobs live on disk, owned by package blob; when a container or account
// leaves the store (ARM delete, resource group delete, or the data plane)
// the BlobStore hook removes its blobs.
//
// Directory resolves account names (global and case-insensitive, like the
// DNS names they are) to Account: keys, shared-key switch, network rules and
// the per-account delegation secret user delegation keys are derived from.
// It caches for a couple of seconds; the ARM types call Invalidate on every
// change so the node that made the change never serves stale data.
//
// Served: the blob endpoint only. primaryEndpoints lists dfs, queue, table,
// web and file as Azure does, because clients read them, but nothing answers
// there.
package storage
