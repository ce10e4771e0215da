// User-assigned managed identities through the real @azure/arm-msi client,
// against a live Outpost, authenticated with a real token from Outpost's
// issuer. Driven by the Go end-to-end tests: `node --test arm-msi.test.mjs`
// with the environment `outpost env` prints (see lib/env.mjs).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ManagedServiceIdentityClient } from "@azure/arm-msi";
import { ResourceManagementClient } from "@azure/arm-resources";
import { ARM_SCOPE, armEndpoint, credential, requireEnv, subscriptionId, uniqueName } from "./lib/env.mjs";

// Read first so a run without the Go driver fails here, with the message
// saying which variable is missing.
const endpoint = armEndpoint();
const subscription = subscriptionId();
const tenant = requireEnv("AZURE_TENANT_ID");
const clientId = requireEnv("AZURE_CLIENT_ID");

// Delay between polls of a long-running operation (the group delete).
const POLL_MS = 250;

// The api-version @azure/arm-msi 2.2.0 sends unless told otherwise; Outpost
// lists it among Microsoft.ManagedIdentity/userAssignedIdentities' versions.
const MSI_API_VERSION = "2024-11-30";

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const cred = credential();

// Both clients build request URLs from `$host` (the operations' "{$host}"
// URL template) and fall back to management.azure.com without it; `endpoint`
// is set to the same value for the pipeline.
const resources = new ResourceManagementClient(cred, subscription, {
  endpoint,
  $host: endpoint,
  credentialScopes: [ARM_SCOPE],
});

function msiClient(extra = {}) {
  return new ManagedServiceIdentityClient(cred, subscription, {
    endpoint,
    $host: endpoint,
    credentialScopes: [ARM_SCOPE],
    ...extra,
  });
}

const msi = msiClient();

/** Asserts that promise rejects with a RestError of this status and ARM error code. */
async function rejectsWith(promise, statusCode, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.statusCode, statusCode, `statusCode (error: ${err.message})`);
    assert.equal(err.code, code, `code (error: ${err.message})`);
    return true;
  });
}

/** The claims of a JWT, without checking its signature. */
function jwtClaims(token) {
  const parts = token.split(".");
  assert.equal(parts.length, 3, "a JWT has three dot-separated parts");
  return JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
}

/** Collects a paged iterator into an array. */
async function collect(iter) {
  const items = [];
  for await (const item of iter) items.push(item);
  return items;
}

describe("token from Outpost's issuer (@azure/identity ClientSecretCredential)", () => {
  it("issues an ARM token for the operator", async () => {
    const token = await cred.getToken(ARM_SCOPE);
    assert.ok(token?.token, "getToken returns a token");
    assert.ok(token.expiresOnTimestamp > Date.now(), "the token has not expired");
    const claims = jwtClaims(token.token);
    assert.equal(claims.iss, `https://sts.windows.net/${tenant}/`, "iss");
    assert.equal(claims.appid, clientId, "appid");
    assert.equal(claims.tid, tenant, "tid");
  });
});

describe("user-assigned identities (@azure/arm-msi)", () => {
  const group = uniqueName("outpost-npm-msi");
  const names = [uniqueName("outpost-npm-id-a"), uniqueName("outpost-npm-id-b")];
  const tags = { suite: "arm-msi", owner: "outpost-e2e" };
  const created = new Map(); // name → Identity returned by createOrUpdate
  let groupDeleted = false;

  before(async () => {
    await resources.resourceGroups.createOrUpdate(group, { location: "westus", tags: { suite: "arm-msi" } });
  });

  after(async () => {
    // Deleting the group takes any identity left by a failed step with it.
    if (!groupDeleted) {
      await resources.resourceGroups.beginDeleteAndWait(group, { updateIntervalInMs: POLL_MS }).catch(() => {});
    }
  });

  it(`sends api-version ${MSI_API_VERSION}`, async () => {
    // Pins the version this suite exercises: a new SDK release that changes
    // it shows up here, not as a confusing failure further down.
    assert.equal(msi.apiVersion, MSI_API_VERSION);
  });

  it("creates two identities", async () => {
    for (const name of names) {
      let status;
      let url;
      const identity = await msi.userAssignedIdentities.createOrUpdate(
        group,
        name,
        { location: "westus", tags },
        {
          onResponse: (raw) => {
            status = raw.status;
            url = raw.request.url;
          },
        },
      );
      assert.equal(status, 201, `a new identity is answered 201 Created (${name})`);
      assert.match(url, new RegExp(`[?&]api-version=${MSI_API_VERSION}(&|$)`), "api-version on the wire");
      assert.equal(
        identity.id,
        `/subscriptions/${subscription}/resourceGroups/${group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`,
      );
      assert.equal(identity.name, name);
      assert.equal(identity.type, "Microsoft.ManagedIdentity/userAssignedIdentities");
      assert.equal(identity.location, "westus");
      assert.deepEqual(identity.tags, tags);
      assert.match(identity.principalId ?? "", GUID, "principalId is a GUID");
      assert.match(identity.clientId ?? "", GUID, "clientId is a GUID");
      assert.match(identity.tenantId ?? "", GUID, "tenantId is a GUID");
      assert.equal(identity.tenantId, tenant, "tenantId is Outpost's tenant");
      created.set(name, identity);
    }
    const [a, b] = names.map((n) => created.get(n));
    assert.notEqual(a.principalId, b.principalId, "each identity has its own principal");
    assert.notEqual(a.clientId, b.clientId, "each identity has its own client id");
  });

  it("gets an identity", async () => {
    const want = created.get(names[0]);
    assert.ok(want, "created by the previous step");
    const identity = await msi.userAssignedIdentities.get(group, names[0]);
    assert.equal(identity.id, want.id);
    assert.equal(identity.name, names[0]);
    assert.equal(identity.type, "Microsoft.ManagedIdentity/userAssignedIdentities");
    assert.equal(identity.location, "westus");
    assert.deepEqual(identity.tags, tags);
    assert.equal(identity.principalId, want.principalId);
    assert.equal(identity.clientId, want.clientId);
    assert.equal(identity.tenantId, tenant);
  });

  it("lists both in the resource group", async () => {
    const listed = await collect(msi.userAssignedIdentities.listByResourceGroup(group));
    assert.deepEqual(listed.map((i) => i.name).sort(), [...names].sort(), "exactly the group's two identities");
    for (const identity of listed) {
      const want = created.get(identity.name);
      assert.equal(identity.id, want.id);
      assert.equal(identity.principalId, want.principalId);
      assert.equal(identity.clientId, want.clientId);
      assert.equal(identity.tenantId, tenant);
    }
  });

  it("lists both in the subscription", async () => {
    const listed = await collect(msi.userAssignedIdentities.listBySubscription());
    for (const name of names) {
      const found = listed.filter((i) => i.name === name);
      assert.equal(found.length, 1, `${name} appears once in the subscription's identities`);
      assert.equal(found[0].id, created.get(name).id);
      assert.equal(found[0].principalId, created.get(name).principalId);
    }
  });

  it("updates the tags", async () => {
    // Same keys as before plus one, so the expected result is the same
    // whether the tags in a PATCH replace or merge into the stored ones.
    const newTags = { suite: "arm-msi", owner: "outpost-e2e-updated", stage: "updated" };
    const want = created.get(names[1]);
    const updated = await msi.userAssignedIdentities.update(group, names[1], { tags: newTags });
    assert.equal(updated.name, names[1]);
    assert.deepEqual(updated.tags, newTags);
    assert.equal(updated.location, "westus");
    assert.equal(updated.principalId, want.principalId, "an update keeps the principal");
    assert.equal(updated.clientId, want.clientId, "an update keeps the client id");
    const identity = await msi.userAssignedIdentities.get(group, names[1]);
    assert.deepEqual(identity.tags, newTags);
    assert.equal(identity.principalId, want.principalId);
    assert.equal(identity.clientId, want.clientId);
  });

  it("deletes an identity", async () => {
    let status;
    await msi.userAssignedIdentities.delete(group, names[0], { onResponse: (raw) => (status = raw.status) });
    assert.equal(status, 200, "deleting an existing identity is answered 200");
    await rejectsWith(msi.userAssignedIdentities.get(group, names[0]), 404, "ResourceNotFound");
    const listed = await collect(msi.userAssignedIdentities.listByResourceGroup(group));
    assert.deepEqual(listed.map((i) => i.name), [names[1]], "only the other identity is left");
  });

  it("deletes the resource group", { timeout: 60_000 }, async () => {
    await resources.resourceGroups.beginDeleteAndWait(group, { updateIntervalInMs: POLL_MS });
    groupDeleted = true;
    const { body } = await resources.resourceGroups.checkExistence(group);
    assert.equal(body, false, "checkExistence after delete");
  });
});

describe("user-assigned identity validation (@azure/arm-msi)", () => {
  const group = uniqueName("outpost-npm-msi-val");

  before(async () => {
    await resources.resourceGroups.createOrUpdate(group, { location: "westus" });
  });

  after(async () => {
    await resources.resourceGroups.beginDeleteAndWait(group, { updateIntervalInMs: POLL_MS }).catch(() => {});
  });

  it("rejects an identity without a location", async () => {
    // The SDK itself refuses to serialize an Identity without `location`
    // (it is required in the model), so the request goes out with one and
    // this policy takes it off the wire body: what reaches Outpost is
    // exactly what the SDK would send, minus location.
    const dropLocation = {
      name: "outpostDropLocation",
      sendRequest(request, next) {
        if (request.method === "PUT" && typeof request.body === "string") {
          const body = JSON.parse(request.body);
          delete body.location;
          request.body = JSON.stringify(body);
        }
        return next(request);
      },
    };
    const raw = msiClient({ additionalPolicies: [{ policy: dropLocation, position: "perCall" }] });
    const name = uniqueName("outpost-npm-id-noloc");

    await rejectsWith(
      raw.userAssignedIdentities.createOrUpdate(group, name, { location: "westus", tags: { suite: "arm-msi" } }),
      400,
      "LocationRequired",
    );
    await rejectsWith(msi.userAssignedIdentities.get(group, name), 404, "ResourceNotFound");
  });
});
