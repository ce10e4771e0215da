// Package msi is managed identities: the `identity` block every resource
// type that supports it shares (None, SystemAssigned, UserAssigned, or both),
// the Microsoft.ManagedIdentity/userAssignedIdentities resource type, and the
// token endpoint workloads use — the App Service protocol (IDENTITY_ENDPOINT +
// IDENTITY_HEADER) that azidentity's ManagedIdentityCredential speaks.
//
// A system-assigned identity is a principal whose ResourceID is the resource
// itself: it is created when the resource's identity type gains
// SystemAssigned and deleted when it loses it or the resource goes. A
// user-assigned identity is a principal whose ResourceID is its
// userAssignedIdentities resource; attaching it to a resource needs the
// caller to hold Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action
// on it, as Azure's Managed Identity Operator role grants.
package msi
