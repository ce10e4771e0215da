// Shared environment for the npm client suites. The Go end-to-end tests start
// an Outpost, then run `node --test <file>` here with the variables that
// `outpost env` prints:
//
//   OUTPOST_ENDPOINT       HTTPS base URL of Outpost's resource manager
//   AZURE_SUBSCRIPTION_ID  subscription to work in
//   AZURE_TENANT_ID        Outpost's tenant
//   AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
//                          the operator service principal (Owner of the
//                          subscription)
//   AZURE_AUTHORITY_HOST   Outpost's token issuer (the endpoint plus "/")
//   NODE_EXTRA_CA_CERTS    Outpost's CA; Node reads it itself at start-up
//
// All but NODE_EXTRA_CA_CERTS are required: Outpost validates the tokens it
// is sent, so the suites get real ones from its issuer.
import { ClientSecretCredential } from "@azure/identity";

/** The scope the Azure CLI and SDKs ask for when they talk to the resource manager. */
export const ARM_SCOPE = "https://management.core.windows.net//.default";

/**
 * Returns the value of an environment variable, or throws an error that says
 * which one is missing and who is meant to set it.
 */
export function requireEnv(name) {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(
      `${name} is not set. These suites run against a live Outpost and are driven by ` +
        `Outpost's Go end-to-end tests, which set it. To run one by hand: start ` +
        `\`outpost serve\`, then \`eval "$(outpost env)"\` and run \`node --test <file>\` here.`,
    );
  }
  return value;
}

/** HTTPS base URL of Outpost's resource manager, without a trailing slash. */
export function armEndpoint() {
  const raw = requireEnv("OUTPOST_ENDPOINT");
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`OUTPOST_ENDPOINT is not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== "https:") {
    // The SDKs' bearer token policy refuses to send a token over plain HTTP.
    throw new Error(`OUTPOST_ENDPOINT must be an https:// URL, got ${JSON.stringify(raw)}`);
  }
  return raw.replace(/\/+$/, "");
}

export function subscriptionId() {
  return requireEnv("AZURE_SUBSCRIPTION_ID");
}

/**
 * The TokenCredential the suites authenticate with: a ClientSecretCredential
 * for the operator (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET) in AZURE_TENANT_ID
 * that asks Outpost's issuer at AZURE_AUTHORITY_HOST for tokens. Instance
 * discovery is off, because it would ask Microsoft's cloud whether that
 * authority is known.
 */
export function credential() {
  const tenantId = requireEnv("AZURE_TENANT_ID");
  const clientId = requireEnv("AZURE_CLIENT_ID");
  const clientSecret = requireEnv("AZURE_CLIENT_SECRET");
  const authorityHost = requireEnv("AZURE_AUTHORITY_HOST");
  return new ClientSecretCredential(tenantId, clientId, clientSecret, {
    authorityHost,
    disableInstanceDiscovery: true,
  });
}

/** A name no other run uses: prefix, time and a random tail, lower case. */
export function uniqueName(prefix) {
  const rand = Math.random().toString(36).slice(2, 8);
  return `${prefix}-${Date.now().toString(36)}-${rand}`;
}
