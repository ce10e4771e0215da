// Package identity is Outpost's identity plane: an Entra-compatible token
// issuer for one tenant.
//
//   - KeyRing holds the RS256 signing keys, shared by every node through the
//     store, rotated on a period; retired keys stay published (JWKS) until
//     every token they signed has expired.
//   - Issuer mints v1-shaped access tokens (iss https://sts.windows.net/{tid}/,
//     aud, oid, sub, tid, appid, idtyp, xms_mirid, iat/nbf/exp) for service
//     principals (client secret or certificate assertion), users and managed
//     identities.
//   - Validator checks a bearer token completely — algorithm pinned to RS256,
//     key id, signature, issuer, audience, expiry, not-before, tenant, size —
//     and that its principal still exists; results are cached until expiry
//     and the cache is dropped when a principal or key goes away.
//   - Handler serves OIDC discovery, JWKS and the client-credentials token
//     endpoints in the v2 form (/{tenant}/oauth2/v2.0/token) and the ADFS form
//     (/adfs/oauth2/token) that az needs offline, with OAuth2 error bodies.
package identity
