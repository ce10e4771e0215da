// The azure-iothub service SDK against an Outpost hub: registry CRUD with
// generated keys, twins, a device query, ETag preconditions as raw REST, and
// bearer-token access with a ClientSecretCredential from Outpost's issuer.
//
// Environment (set by test/e2e/iothub_npm_test.go): IOTHUB_CONNECTION_STRING
// (an iothubowner service connection string), IOTHUB_HOST, plus what
// `outpost env` prints (for the credential).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import iothub from "azure-iothub";
import { credential, requireEnv } from "./lib/env.mjs";

const { Registry, SharedAccessSignature } = iothub;
const connectionString = requireEnv("IOTHUB_CONNECTION_STRING");
const host = requireEnv("IOTHUB_HOST");
const registry = Registry.fromConnectionString(connectionString);
const suffix = Date.now().toString(36);
const ids = [];

after(async () => {
  for (const id of ids) {
    await registry.delete(id).catch(() => {});
  }
});

test("create with empty keys generates them", async () => {
  const id = `dev-${suffix}-a`;
  ids.push(id);
  const res = await registry.create({ deviceId: id });
  const dev = res.responseBody;
  assert.equal(dev.deviceId, id);
  assert.equal(dev.status, "enabled");
  assert.equal(dev.authentication.type, "sas");
  assert.match(dev.authentication.symmetricKey.primaryKey, /^[A-Za-z0-9+/]{43}=$/);
  assert.notEqual(dev.authentication.symmetricKey.primaryKey, dev.authentication.symmetricKey.secondaryKey);
  assert.ok(dev.etag);
  assert.ok(dev.generationId);
  await assert.rejects(registry.create({ deviceId: id }), (err) => {
    assert.equal(err.constructor.name, "DeviceAlreadyExistsError");
    return true;
  });
});

test("get, update, list", async () => {
  const id = ids[0];
  const got = (await registry.get(id)).responseBody;
  assert.equal(got.deviceId, id);
  const updated = (await registry.update({ deviceId: id, status: "disabled", authentication: got.authentication })).responseBody;
  assert.equal(updated.status, "disabled");
  assert.equal(updated.authentication.symmetricKey.primaryKey, got.authentication.symmetricKey.primaryKey);
  assert.notEqual(updated.etag, got.etag);
  const id2 = `dev-${suffix}-b`;
  ids.push(id2);
  await registry.create({ deviceId: id2, status: "enabled" });
  const list = (await registry.list()).responseBody.map((d) => d.deviceId);
  assert.ok(list.includes(id) && list.includes(id2), `list ${list}`);
});

test("a stale If-Match etag gets 412 PreconditionFailed", async () => {
  const id = ids[0];
  const token = SharedAccessSignature.create(host, "iothubowner", keyFrom(connectionString), Math.floor(Date.now() / 1000) + 600).toString();
  const body = JSON.stringify({ deviceId: id, status: "enabled" });
  const res = await request("PUT", `/devices/${encodeURIComponent(id)}?api-version=2021-04-12`, body, {
    authorization: token,
    "if-match": '"not-the-current-etag"',
    "content-type": "application/json; charset=utf-8",
  });
  assert.equal(res.status, 412);
  assert.match(JSON.parse(res.body).Message, /^ErrorCode:PreconditionFailed;/);
});

test("twin round trip and a device query", async () => {
  const id = ids[1];
  const twin = (await registry.getTwin(id)).responseBody;
  assert.equal(twin.deviceId, id);
  const patched = (await registry.updateTwin(id, { tags: { site: `s-${suffix}` }, properties: { desired: { interval: 5 } } }, twin.etag)).responseBody;
  assert.equal(patched.tags.site, `s-${suffix}`);
  assert.equal(patched.properties.desired.interval, 5);
  assert.equal(patched.properties.desired.$version, 1);
  const again = (await registry.getTwin(id)).responseBody;
  assert.equal(again.properties.desired.interval, 5);

  const query = registry.createQuery(`SELECT * FROM devices WHERE tags.site = 's-${suffix}'`, 10);
  const result = await query.nextAsTwin();
  const found = result.result.map((t) => t.deviceId);
  assert.deepEqual(found, [id]);
});

test("bearer token from Outpost's issuer", async () => {
  const bearer = Registry.fromTokenCredential(host, credential());
  const got = (await bearer.get(ids[1])).responseBody;
  assert.equal(got.deviceId, ids[1]);
});

test("delete, then get is DeviceNotFound", async () => {
  const id = ids.pop();
  await registry.delete(id);
  await assert.rejects(registry.get(id), (err) => {
    assert.equal(err.constructor.name, "DeviceNotFoundError");
    return true;
  });
});

function keyFrom(cs) {
  return cs.split(";").find((p) => p.startsWith("SharedAccessKey=")).slice("SharedAccessKey=".length);
}

function request(method, path, body, headers) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port: 443, method, path, headers }, (res) => {
      let data = "";
      res.on("data", (c) => (data += c));
      res.on("end", () => resolve({ status: res.statusCode, body: data }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
