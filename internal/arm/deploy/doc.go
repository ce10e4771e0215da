// Package deploy is Outpost's ARM template deployments: the
// Microsoft.Resources/deployments resource type at resource-group and
// subscription scope, and its operations.
//
// A deployment PUT goes through the resource manager like any long-running
// resource:
//
//	Prepare    the body (az's lenient form included: ParseLenient) is decoded;
//	           the template's expressions must all parse; supplied parameters
//	           must be declared and required ones supplied. The deployer is
//	           stored with the deployment, and so are the values of secure
//	           parameters, which GET shows by type only; they are dropped
//	           when the deployment ends.
//	  → 201 + Azure-AsyncOperation
//	Provision  run: parameters are evaluated and checked (type,
//	           allowedValues); every resource — copy instances, conditions,
//	           nested child resources, extension resources (scope or the
//	           old "…/providers/…" type) — gets its id; dependsOn and the
//	           implicit dependencies of reference()/list*() by name are linked
//	           (cycles refused); resources are PUT with the deployer's rights
//	           as soon as their dependencies succeeded, independent ones in
//	           parallel; long-running ones are awaited; nested deployments run
//	           as deployments of their own (outer scope: this template's
//	           parameters and variables evaluate the nested template first).
//	           Outputs are evaluated last. A failure records DeploymentFailed
//	           with one detail per failed operation, carrying the provider's
//	           own code and message; what deployed before it stays, and
//	           resources that depend on a failed one are never started (no
//	           operation, no detail).
//
// Files: deployments.go (the resource type, its actions), template.go
// (checks before planning), plan.go (a run: expand resources, ids,
// dependencies), execute.go (deploying, reference()/list*()), operations.go
// (one record per resource put or deleted, listed under
// …/deployments/{name}/operations while the deployment runs), complete.go
// (Complete mode), whatif.go, expand.go (Expand: a template evaluated
// without deploying, for tests and tools).
//
// validate (POST …/validate, which az calls first) runs Prepare's checks
// and plans the template without deploying, so cycles and bad parameter
// values fail before anything is created. whatIf plans the same way and
// compares each resource with what exists: Create, Modify (with the
// property paths the template changes), NoChange, Unsupported (types
// Outpost doesn't serve), and for the group's other resources Ignore or, in
// Complete mode, Delete. A nested deployment's template is planned in its
// own scope and its resources listed; one that can't be planned before
// deploying (its template not yet evaluable) is one Deploy change. Complete mode
// deletes, after everything listed deployed, the group's top-level
// resources neither the template nor its nested deployments into the same
// group list, except deployments and Microsoft.Authorization resources, and
// except resources whose condition is false.
//
// Subscription deployments need a location; they create resource groups
// (Microsoft.Resources/resourceGroups) and nested deployments into them
// (the resourceGroup member).
//
// languageVersion 2.0 templates (resources by symbolic name, as Bicep emits
// them for newer features) plan the same way: dependsOn, reference() and
// references() take symbolic names, and an "existing" resource is only read.
//
// cancel stops a deployment this process runs; it ends Canceled.
//
// Not yet: templateLink/parametersLink (no fetching from URIs), Key Vault
// parameter references, management-group and tenant scope.
package deploy
