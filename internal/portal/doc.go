// Package portal is Outpost's web portal: server-rendered pages (html/template,
// so every value is escaped for its context) for the flows an operator would
// otherwise follow in the Azure portal — a hub's identities, access control
// (IAM) on any resource, message routing, file upload, networking, devices and
// import/export jobs.
//
// The portal holds no rights of its own. Sign-in runs the client-credentials
// (service principal) or password (user) grant against Outpost's own token
// endpoint, in process, and keeps the resulting resource manager token in a
// server-side session. Every page then calls the same public HTTP handlers
// the Azure clients call, in process: the resource manager with the signed-in
// principal's bearer token, and — for devices and jobs, as the Azure portal
// does by default — a hub's service API with the hub's iothubowner key, which
// the principal may only read if its role allows listkeys. RBAC, validation and error messages are therefore
// exactly the API's; a refusal (AuthorizationFailed, the "in use by endpoint"
// refusal, a file upload check) is shown with the API's code and message.
//
// Flow of one change: GET page → form with the session's CSRF token → POST
// (token checked, constant time) → in-process API call → on success a 303 to
// the page with a notice, on failure the page rendered again with the API's
// status and error.
//
// Sessions live in the memory of the node that signed the user in (an
// opaque id in a __Host- cookie: Secure, HttpOnly, SameSite=Strict) and end
// when the access token expires or the user signs out.
package portal
