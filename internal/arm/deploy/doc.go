// Package deploy is Outpost's ARM template deployments: the
// Microsoft.Resources/deployments resource type at resource-group scope.
//
// A deployment PUT goes through the resource manager like any long-running
// resource:
//
//	Prepare    the body (az's lenient form included: ParseLenient) is decoded;
//	           the template's expressions must all parse; supplied parameters
//	           must be declared and required ones supplied. The deployer is
//	           stored with the deployment.
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
//	           with one detail per failed resource.
//
// validate (POST …/validate, which az calls first) runs Prepare's checks
// without deploying. The template language is the expr subpackage.
//
// Not yet: Complete mode's deletions (treated as Incremental for what it
// deploys), templateLink/parametersLink (no fetching from URIs), Key Vault
// parameter references, cross-resource-group nested deployments,
// subscription/tenant-scope deployments, deployment operations listing.
package deploy
