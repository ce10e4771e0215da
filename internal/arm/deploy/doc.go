// Package deploy will hold Outpost's ARM template deployments: the
// Microsoft.Resources/deployments resource, the template engine that
// validates a template, orders its resources by dependsOn and reference(),
// expands copy loops and nested deployments, and the deployment operations
// and outputs it records.
//
// The template expression language itself ("[concat(parameters('x'), '-1')]")
// lives in the expr subpackage, so the engine, the what-if renderer and tools
// share one parser and one function library.
package deploy
