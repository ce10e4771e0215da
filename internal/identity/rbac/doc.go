// Package rbac puts Azure role-based access control on the control plane:
// the Microsoft.Authorization/roleAssignments and roleDefinitions resource
// types (built-in roles come from authz and are never stored; custom roles
// and assignments are ordinary stored resources), and the Engine that keeps
// an authz.Evaluator snapshot of them current for every decision.
//
// Every local change reloads the snapshot before the request returns; a
// periodic reload carries changes made by other nodes. An optional
// propagation delay rehearses Azure's "it can take a few minutes".
package rbac
