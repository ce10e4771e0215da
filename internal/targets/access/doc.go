// Package access decides whether a data-plane request to an egress target
// (blob storage, Event Hubs, Service Bus) may proceed. Every target asks the
// same three questions in the same order, so they answer alike:
//
//  1. Authenticate: is the Bearer token valid — RS256 signature from the
//     tenant's key set, issuer, audience for this service, expiry and
//     not-before, principal still present (identity.Validator)?
//  2. Authorize: does RBAC grant the data action at the entity's scope
//     (account/container, namespace/entity), inherited from above as ARM
//     scopes inherit (rbac.Engine)?
//  3. Admit: do the resource's network rules let the caller in — public
//     network access, default action, IP rules, and the trusted-services
//     bypass, which admits only a system-assigned identity of an IoT hub
//     (recognised from the token's xms_mirid), never a user-assigned one?
//
// Key-based callers (Shared Key, SAS) skip 1 and 2 — their key is the proof —
// but not 3. Each refusal is a *Denial carrying the step and a reason a
// person can act on; the data planes map it onto their own error shape
// (storage XML, Service Bus XML). Every decision is logged with its reason:
// refusals at Info, grants at Debug.
package access
