// Package hubresource is the Microsoft.Devices/IotHubs resource type of the
// control plane: what `az iot hub create`, armiothub and ARM templates talk
// to. It plugs into internal/arm as a long-running ResourceType with
// actions, reads and provider actions.
//
// Flow of a PUT (arm drives it, this package fills in the steps):
//
//	Prepare   name rules (flat IoT Hub errors), name unique in the
//	          installation (host names are global), location, sku, the
//	          identity block (msi.Manager.Prepare), the properties schema with
//	          server-filled defaults; keys are generated once and kept
//	  → arm stores it with provisioningState Accepted, answers 201 +
//	    Azure-AsyncOperation
//	Provision system-assigned principal (msi.Manager.Provision), then
//	          Runtime.EnsureHub so the hub's streams and registry follow;
//	          state Active
//	Deprovision (DELETE, or the group's delete) msi.Manager.Deprovision and
//	          Runtime.RemoveHub
//
// Update semantics: a property member that a PUT omits (or sends as null)
// keeps its stored value, so the GET-modify-PUT pattern of az and the SDKs,
// whose GET never carries keys, keeps the hub's keys and settings. The
// identity block follows ARM instead (absent means None), as every type
// sharing msi.Manager does. Routing and file-upload settings are validated
// and echoed; acting on them belongs to the routing engine and file upload.
//
// Errors: the IotHubs provider answers its own validation errors flat,
// {"code","httpStatusCode","message","details"} (arm.Error.Flat), as IoT
// Hub's resource provider does; ARM-level problems (api-version, location,
// not found) keep the ARM envelope.
//
// Render never returns keys (authorizationPolicies is null, as in Azure);
// POST .../listkeys does.
package hubresource
