// Package egress is the one HTTP client the hub uses to reach URLs that
// users supply: message-routing endpoints, file-upload storage, bulk
// import/export blobs.
//
// # Threat model
//
// Whoever can create a routing endpoint or start an import job chooses
// where Outpost sends requests, and those requests carry credentials
// Outpost minted (bearer tokens, SAS). Unchecked, that turns Outpost into a
// proxy to everything its host can reach and the user cannot: the cloud
// metadata service at 169.254.169.254, a Redis on 127.0.0.1:6379, the
// managed-identity endpoint, admin ports on the private network (SSRF). And
// a token sent over plain http, or re-sent to a redirect's Location, is a
// token given away. So the client:
//
//   - speaks https only; http and every other scheme are refused before any
//     connection is made;
//   - follows no redirect: a 3xx with a Location is a *RefusedError naming
//     it, and nothing is sent there;
//   - decides where to connect when it connects, on the resolved addresses,
//     and dials exactly the addresses it checked, so a name that resolves to
//     loopback (DNS rebinding) is caught however the URL spelled it;
//   - dials names Outpost serves (Config.ServedNames, ServedSuffixes) at
//     Outpost's own listeners and never where DNS says, and dials Outpost's
//     listener addresses (SelfAddr, ExtraSelf) directly;
//   - dials anything on Config.Allow, the operator's explicit exceptions
//     (an Azurite on 127.0.0.1:10000);
//   - refuses every other loopback, private, link-local, CGNAT, multicast,
//     unspecified, documentation or reserved address, in any spelling
//     (IPv4-mapped IPv6, NAT64), and any address of this machine's own
//     interfaces; public addresses are allowed only while
//     Config.AllowPublic is on;
//   - ignores HTTP(S)_PROXY: a proxy would be dialed instead of the checked
//     destination and would reach what the check refused.
//
// Refusals are *RefusedError values saying what to change, logged at Warn.
// Errors never carry a URL's query or user info, where SAS signatures and
// passwords live.
//
// Out of scope: what a public destination the user chose does with the
// credentials meant for it, and limits on response sizes or request rates,
// which belong to the callers.
package egress
