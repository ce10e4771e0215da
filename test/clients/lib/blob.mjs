// Environment and clients for the blob conformance suite
// (storage-blob.test.mjs). The suite is configured only by these variables, so
// one file runs against any Azure Blob endpoint: Azurite (the reference
// emulator), Outpost's blob service, or a real storage account.
//
//   BLOB_ENDPOINT   account URL, virtual-hosted (https://acct.blob.example/)
//                   or path-style (https://127.0.0.1:10000/devstoreaccount1)
//   BLOB_AUTH       sharedkey | sas | bearer
//   BLOB_ACCOUNT    account name                        (sharedkey, sas)
//   BLOB_KEY        account key, base64                 (sharedkey, sas)
//   AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST
//                   a service principal and its issuer  (bearer; see env.mjs)
//   BLOB_PEER       optional: "azurite" expects Azurite's answer where it
//                   differs from real Azure (commented at each such place)
//   NODE_EXTRA_CA_CERTS
//                   the server's CA file; Node reads it when it starts
//
// In sas mode the suite signs its own SAS tokens with BLOB_KEY: an account SAS
// for the main client and service SAS tokens for single containers, sent
// through AnonymousCredential.
import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  AnonymousCredential,
  BlobServiceClient,
  ContainerClient,
  ContainerSASPermissions,
  SASProtocol,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
  generateBlobSASQueryParameters,
} from "@azure/storage-blob";
import { credential } from "./env.mjs";

export const AUTH_MODES = ["sharedkey", "sas", "bearer"];

/** How long the suite's SAS tokens are valid. */
const SAS_LIFETIME_MS = 60 * 60 * 1000;

function blobEnv(name) {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(
      `${name} is not set. storage-blob.test.mjs is configured only by environment variables: ` +
        `BLOB_ENDPOINT (account URL), BLOB_AUTH (${AUTH_MODES.join(" | ")}), BLOB_ACCOUNT and ` +
        `BLOB_KEY (sharedkey, sas), AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and ` +
        `AZURE_AUTHORITY_HOST (bearer). The Go end-to-end tests set them (TestAzuriteBlobSuite ` +
        `runs it against Azurite); see the top of lib/blob.mjs.`,
    );
  }
  return value;
}

/**
 * Reads and checks the suite's environment. Returns
 * { endpoint, auth, account, key, peer, https }, endpoint without a
 * trailing slash.
 */
export function blobConfig() {
  const raw = blobEnv("BLOB_ENDPOINT");
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`BLOB_ENDPOINT is not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`BLOB_ENDPOINT must be an http(s):// URL, got ${JSON.stringify(raw)}`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new Error(`BLOB_ENDPOINT must be a bare account URL, without query or fragment: ${JSON.stringify(raw)}`);
  }
  const auth = blobEnv("BLOB_AUTH");
  if (!AUTH_MODES.includes(auth)) {
    throw new Error(`BLOB_AUTH must be one of ${AUTH_MODES.join(", ")}, got ${JSON.stringify(auth)}`);
  }
  const https = url.protocol === "https:";
  if (auth === "bearer" && !https) {
    // The SDK's bearer policy refuses to send a token over plain HTTP.
    throw new Error(`BLOB_AUTH=bearer needs an https:// BLOB_ENDPOINT, got ${JSON.stringify(raw)}`);
  }
  const config = {
    endpoint: raw.replace(/\/+$/, ""),
    auth,
    https,
    account: undefined,
    key: undefined,
    peer: process.env.BLOB_PEER ?? "",
  };
  if (auth === "sharedkey" || auth === "sas") {
    config.account = blobEnv("BLOB_ACCOUNT");
    config.key = blobEnv("BLOB_KEY");
  }
  return config;
}

/** The shared key credential of BLOB_ACCOUNT / BLOB_KEY, or with another key. */
export function sharedKey(config, key = config.key) {
  return new StorageSharedKeyCredential(config.account, key);
}

function sasProtocol(config) {
  return config.https ? SASProtocol.Https : SASProtocol.HttpsAndHttp;
}

/**
 * An account SAS (blob service; service, container and object resource
 * types) signed with key, as a query string without "?".
 */
export function accountSas(config, { permissions = "rwdlac", key = config.key } = {}) {
  return generateAccountSASQueryParameters(
    {
      expiresOn: new Date(Date.now() + SAS_LIFETIME_MS),
      permissions: AccountSASPermissions.parse(permissions),
      resourceTypes: AccountSASResourceTypes.parse("sco").toString(),
      services: AccountSASServices.parse("b").toString(),
      protocol: sasProtocol(config),
    },
    sharedKey(config, key),
  ).toString();
}

/** A service SAS for one container (sr=c), as a query string without "?". */
export function containerSas(config, containerName, permissions) {
  return generateBlobSASQueryParameters(
    {
      containerName,
      expiresOn: new Date(Date.now() + SAS_LIFETIME_MS),
      permissions: ContainerSASPermissions.parse(permissions),
      protocol: sasProtocol(config),
    },
    sharedKey(config),
  ).toString();
}

/** URL of a container under the account endpoint. */
export function containerUrl(config, containerName) {
  return `${config.endpoint}/${encodeURIComponent(containerName)}`;
}

/** A ContainerClient that authenticates only with the given SAS query string. */
export function containerClientWithSas(config, containerName, sas) {
  return new ContainerClient(`${containerUrl(config, containerName)}?${sas}`, new AnonymousCredential());
}

/** The BlobServiceClient for the configured auth mode. */
export function serviceClient(config) {
  switch (config.auth) {
    case "sharedkey":
      return new BlobServiceClient(config.endpoint, sharedKey(config));
    case "sas":
      return serviceClientWithSas(config, accountSas(config));
    case "bearer":
      // credential() reads AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
      // and AZURE_AUTHORITY_HOST, with instance discovery off. The SDK asks
      // for https://storage.azure.com/.default.
      return new BlobServiceClient(config.endpoint, credential());
    default:
      throw new Error(`unknown BLOB_AUTH ${config.auth}`);
  }
}

/** A BlobServiceClient that authenticates only with the given account SAS query string. */
export function serviceClientWithSas(config, sas) {
  return new BlobServiceClient(`${config.endpoint}?${sas}`, new AnonymousCredential());
}

/** A BlobServiceClient that signs with a random key instead of BLOB_KEY. */
export function serviceClientWithWrongKey(config) {
  return new BlobServiceClient(config.endpoint, sharedKey(config, randomKey()));
}

/** A random 64-byte account key, base64. */
export function randomKey() {
  const bytes = new Uint8Array(64);
  crypto.getRandomValues(bytes);
  return Buffer.from(bytes).toString("base64");
}
