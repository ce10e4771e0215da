// Package blob is the Blob service REST data plane: an http.Handler the app
// mounts on {account}.blob.{suffix} (Handler) and, path-style, on a port of
// its own (Handler.PathStyle, /{account}/{container}/{blob}, as Azurite).
//
// A request goes through the same steps every time:
//
//  1. Account: the Host (or first path segment) names it; storage.Directory
//     resolves it (ResourceNotFound otherwise).
//  2. Operation: method + restype + comp (+ container/blob in the path) pick
//     one operation (ops.go), which knows its RBAC action, SAS permission
//     letters, resource level and whether anonymous reads of a public
//     container may do it.
//  3. Credentials, in this order: Authorization: Bearer (x-ms-version >=
//     2017-11-09, HTTPS; access.Authenticate, then access.Authorize of the
//     operation's action at the container's ARM id), Authorization:
//     SharedKey (sharedkey.go; refused when the account disallows shared
//     keys), a SAS in the query (sas.go: service, account or user
//     delegation; signature by sv layout, times, spr, sip, then the
//     operation's permission), or nothing (public containers only; else 401
//     with the Bearer challenge azblob follows).
//  4. Network: access.Admit with the account's rules and the client address
//     (the caller only for Bearer: keys never get the trusted-services bypass).
//  5. The operation runs against storage.Containers (containers are ARM
//     records, one source of truth) and Disk (blobs).
//
// Disk (disk.go) keeps blobs as files under a root, names hashed so no
// blob name can reach outside it; uploads stream to a temporary file and
// become visible by renaming a new metadata sidecar into place, so readers
// never see half a write and a failed Put Block List leaves the old blob.
// Put Block List commits by moving the staged block files, one extent
// each, not by copying them (content.go reads the extents as one blob).
// User delegation keys are derived from the key's own fields and a
// per-account secret (storage.Account.DelegationKey), so any node verifies a
// user delegation SAS without state.
//
// Errors are storage XML (errors.go) with x-ms-error-code.
package blob
