// Resource groups through the real @azure/arm-resources client, against a
// live Outpost. Driven by the Go end-to-end tests: `node --test
// arm-resources.test.mjs` with OUTPOST_ENDPOINT, AZURE_SUBSCRIPTION_ID and
// NODE_EXTRA_CA_CERTS set (see lib/env.mjs).
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ResourceManagementClient } from "@azure/arm-resources";
import { ARM_SCOPE, armEndpoint, credential, subscriptionId, uniqueName } from "./lib/env.mjs";

// Read first so a run without the Go driver fails here, with the message
// saying which variable is missing.
const endpoint = armEndpoint();
const subscription = subscriptionId();

// Delay between polls of a long-running operation, so a delete is quick.
const POLL_MS = 250;

function newClient(extra = {}) {
  return new ResourceManagementClient(credential(), subscription, {
    // @azure/arm-resources 7 builds request URLs from `endpoint` (it only
    // falls back to management.azure.com). `$host` is set to the same value
    // so a client generated with a "{$host}" URL template goes there too.
    endpoint,
    $host: endpoint,
    credentialScopes: [ARM_SCOPE],
    ...extra,
  });
}

const client = newClient();

/** Asserts that promise rejects with a RestError of this status and ARM error code. */
async function rejectsWith(promise, statusCode, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.statusCode, statusCode, `statusCode (error: ${err.message})`);
    assert.equal(err.code, code, `code (error: ${err.message})`);
    return true;
  });
}

describe("resource groups (@azure/arm-resources)", () => {
  const name = uniqueName("outpost-npm-rg");
  const tags = { suite: "arm-resources", owner: "outpost-e2e" };
  let deleted = false;

  after(async () => {
    // Leave nothing behind when a step in the middle failed.
    if (!deleted) {
      await client.resourceGroups
        .beginDeleteAndWait(name, { updateIntervalInMs: POLL_MS })
        .catch(() => {});
    }
  });

  it("creates a group", async () => {
    let status;
    const group = await client.resourceGroups.createOrUpdate(
      name,
      { location: "westus", tags },
      { onResponse: (raw) => (status = raw.status) },
    );
    assert.equal(status, 201, "a new group is answered 201 Created");
    assert.equal(group.name, name);
    assert.equal(group.location, "westus");
    assert.deepEqual(group.tags, tags);
  });

  it("gets the group", async () => {
    const group = await client.resourceGroups.get(name);
    assert.equal(group.id, `/subscriptions/${subscription}/resourceGroups/${name}`);
    assert.equal(group.name, name);
    assert.equal(group.type, "Microsoft.Resources/resourceGroups");
    assert.equal(group.location, "westus");
    assert.equal(group.properties?.provisioningState, "Succeeded");
    assert.deepEqual(group.tags, tags);
  });

  it("checkExistence finds the group", async () => {
    const { body } = await client.resourceGroups.checkExistence(name);
    assert.equal(body, true);
  });

  it("lists the group", async () => {
    const found = [];
    for await (const group of client.resourceGroups.list()) {
      if (group.name === name) found.push(group);
    }
    assert.equal(found.length, 1, `${name} appears once in the subscription's groups`);
    assert.equal(found[0].location, "westus");
    assert.deepEqual(found[0].tags, tags);
  });

  it("updates the tags", async () => {
    const newTags = { suite: "arm-resources", stage: "updated" };
    const updated = await client.resourceGroups.update(name, { tags: newTags });
    assert.equal(updated.name, name);
    assert.deepEqual(updated.tags, newTags);
    const group = await client.resourceGroups.get(name);
    assert.deepEqual(group.tags, newTags);
    assert.equal(group.location, "westus");
    assert.equal(group.properties?.provisioningState, "Succeeded");
  });

  it("deletes the group", { timeout: 60_000 }, async () => {
    await client.resourceGroups.beginDeleteAndWait(name, { updateIntervalInMs: POLL_MS });
    deleted = true;
    const { body } = await client.resourceGroups.checkExistence(name);
    assert.equal(body, false, "checkExistence after delete");
    await rejectsWith(client.resourceGroups.get(name), 404, "ResourceGroupNotFound");
  });
});

describe("resource group validation (@azure/arm-resources)", () => {
  it("rejects a group without a location", async (t) => {
    // The SDK itself refuses to serialize a ResourceGroup without `location`,
    // so the request goes out with one and this policy takes it off the wire
    // body: what reaches Outpost is exactly what the SDK would send, minus
    // location.
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
    const raw = newClient({ additionalPolicies: [{ policy: dropLocation, position: "perCall" }] });
    const name = uniqueName("outpost-npm-noloc");
    t.after(() => client.resourceGroups.beginDeleteAndWait(name, { updateIntervalInMs: POLL_MS }).catch(() => {}));

    await rejectsWith(
      raw.resourceGroups.createOrUpdate(name, { location: "westus", tags: { suite: "arm-resources" } }),
      400,
      "LocationRequired",
    );
    const { body } = await client.resourceGroups.checkExistence(name);
    assert.equal(body, false, "a rejected create leaves no group behind");
  });
});
