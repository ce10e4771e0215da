// Shared environment for the npm client suites. The Go end-to-end tests start
// an Outpost, then run `node --test <file>` here with these variables set:
//
//   OUTPOST_ENDPOINT       HTTPS base URL of Outpost's resource manager (required)
//   AZURE_SUBSCRIPTION_ID  subscription to work in (required)
//   NODE_EXTRA_CA_CERTS    Outpost's CA; Node reads it itself at start-up
//   OUTPOST_TEST_TOKEN     static bearer token (default "outpost-test")
//   AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST, AZURE_TENANT_ID
//                          when the first three are all set, a real
//                          ClientSecretCredential against that authority is
//                          used instead of the static token
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
 * The TokenCredential the suites authenticate with.
 *
 * With AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_AUTHORITY_HOST all set it
 * is a ClientSecretCredential (tenant from AZURE_TENANT_ID) that asks that
 * authority for tokens. Otherwise it hands out a static bearer token,
 * OUTPOST_TEST_TOKEN or "outpost-test".
 */
export function credential() {
  const { AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST } = process.env;
  if (AZURE_CLIENT_ID && AZURE_CLIENT_SECRET && AZURE_AUTHORITY_HOST) {
    const tenantId = requireEnv("AZURE_TENANT_ID");
    return new ClientSecretCredential(tenantId, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, {
      authorityHost: AZURE_AUTHORITY_HOST,
      disableInstanceDiscovery: true,
    });
  }
  return {
    getToken: async () => ({
      token: process.env.OUTPOST_TEST_TOKEN ?? "outpost-test",
      expiresOnTimestamp: Date.now() + 3600_000,
    }),
  };
}

/** A name no other run uses: prefix, time and a random tail, lower case. */
export function uniqueName(prefix) {
  const rand = Math.random().toString(36).slice(2, 8);
  return `${prefix}-${Date.now().toString(36)}-${rand}`;
}
