// Package authz decides Azure RBAC questions — may principal P perform
// action A on scope S? — the way Azure Resource Manager does, from an
// immutable snapshot of role definitions and role assignments. It has no
// store and no HTTP: the caller builds an Evaluator when assignments change
// and swaps it in (Policy holds it in an atomic pointer).
//
// Semantics (Microsoft Learn, role-based-access-control/role-definitions.md,
// scope-overview.md, built-in-roles/*.md):
//
//   - An assignment at scope S applies to S and to every resource id below
//     it: a case-insensitive, segment-wise prefix, so .../resourceGroups/rg
//     covers .../resourceGroups/rg/providers/... but not .../resourceGroups/rg2.
//     "/" covers everything. Management-group ancestry is not modelled:
//     resource ids do not name their management group.
//   - A permission block grants an operation when some Actions entry matches
//     it and no NotActions entry of the same block does; likewise for
//     DataActions/NotDataActions. NotActions are not denies: another block or
//     another role can still grant the operation. Actions never grant data
//     actions and DataActions never grant management actions ("management
//     access is not inherited to your data"), so Owner's "*" reads no blob.
//   - Operation strings compare case-insensitively and "*" matches any run
//     of characters, "/" included. A "*" that fills a whole segment
//     ("a/*/b") also matches no segment at all ("a/b"): Azure's own Managed
//     Identity Operator grants userAssignedIdentities/assign/action through
//     "userAssignedIdentities/*/assign/action" (managed identities FAQ and
//     the LinkedAuthorizationFailed reports this role fixes).
//   - Conditions (ABAC) on assignments are not evaluated; an assignment that
//     carries one grants no data actions, failing closed.
//
// BuiltInRoles carries the published definitions (GUIDs, actions,
// notActions, dataActions, notDataActions, descriptions) of the roles an
// IoT hub deployment with managed identities needs, copied from
// MicrosoftDocs/azure-docs articles/role-based-access-control/built-in-roles/
// {privileged,general,identity,storage,analytics,integration,internet-of-things}.md.
package authz
