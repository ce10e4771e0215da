// Package arm is Outpost's control plane: an Azure Resource Manager
// compatible REST surface. It parses resource ids (case-insensitively, with
// "//" collapsed, because az and the SDKs send both), answers subscriptions,
// providers, resource groups and generic resources by id, renders the ARM
// error envelope, and drives long-running operations.
//
// Resource types plug in through the ResourceType interface: one Go type per
// ARM type that validates a PUT (Prepare), carries out its side effects
// (Provision, idempotent so it can resume after a crash) and undoes them
// (Deprovision). The framework owns storage, ETags, If-Match, api-version
// checks and LRO headers, so a provider never repeats them.
//
// Flow of a PUT:
//
//	parse id → api-version check → Prepare(current, body) → store.Put (If-Match)
//	  → synchronous type: Provision → store → 200/201
//	  → long-running type: store with provisioningState=Accepted, record an
//	    Operation, answer 201 + Azure-AsyncOperation; the OperationRunner
//	    calls Provision and marks the operation Succeeded or Failed.
package arm
