// The azure-iothub service SDK's bulk import/export jobs against an Outpost
// hub: importDevicesFromBlob / exportDevicesToBlob with container SAS URIs
// (key-based), and the ...ByIdentity variants with the hub's system-assigned
// identity and with a user-assigned identity id.
//
// Environment (set by test/e2e/iothub_jobs_npm_test.go):
// IOTHUB_CONNECTION_STRING (iothubowner of a hub with a system-assigned and
// a user-assigned identity, both Storage Blob Data Contributor on the
// account), JOBS_INPUT / JOBS_OUTPUT (container URLs), JOBS_INPUT_SAS /
// JOBS_OUTPUT_SAS (the same with a SAS), JOBS_UAMI (the user-assigned
// identity's resource id), JOBS_OTHER_UAMI (one not on the hub),
// JOBS_DEVICES (how many lines the input devices.txt has).
import { test } from "node:test";
import assert from "node:assert/strict";
import iothub from "azure-iothub";
import { requireEnv } from "./lib/env.mjs";

const { Registry } = iothub;
const registry = Registry.fromConnectionString(requireEnv("IOTHUB_CONNECTION_STRING"));
const input = requireEnv("JOBS_INPUT");
const output = requireEnv("JOBS_OUTPUT");
const inputSAS = requireEnv("JOBS_INPUT_SAS");
const outputSAS = requireEnv("JOBS_OUTPUT_SAS");
const uami = requireEnv("JOBS_UAMI");
const otherUami = requireEnv("JOBS_OTHER_UAMI");
const devices = Number(requireEnv("JOBS_DEVICES"));

// Some calls resolve to { responseBody, httpResponse }, others to the body.
const bodyOf = (r) => (r && r.responseBody !== undefined ? r.responseBody : r);

async function finished(job) {
  assert.ok(job.jobId, `job ${JSON.stringify(job)}`);
  for (let i = 0; i < 600; i++) {
    const responseBody = bodyOf(await registry.getJob(job.jobId));
    if (["completed", "failed", "cancelled"].includes(responseBody.status)) {
      return responseBody;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${job.jobId} did not finish`);
}

test("importDevicesFromBlob with SAS URIs", async () => {
  const responseBody = bodyOf(await registry.importDevicesFromBlob(inputSAS, outputSAS));
  assert.equal(responseBody.type, "import");
  const job = await finished(responseBody);
  assert.equal(job.status, "completed", job.failureReason);
  assert.equal(job.progress, 100);
  const stats = bodyOf(await registry.getRegistryStatistics());
  assert.equal(stats.totalDeviceCount, devices);
});

test("exportDevicesToBlob with a SAS URI", async () => {
  const responseBody = bodyOf(await registry.exportDevicesToBlob(outputSAS, false));
  assert.equal(responseBody.type, "export");
  const job = await finished(responseBody);
  assert.equal(job.status, "completed", job.failureReason);
});

test("importDevicesFromBlobByIdentity with the system-assigned identity", async () => {
  const responseBody = bodyOf(await registry.importDevicesFromBlobByIdentity(input, output));
  assert.equal(responseBody.storageAuthenticationType, "identityBased");
  const job = await finished(responseBody);
  assert.equal(job.status, "completed", job.failureReason);
});

test("importDevicesFromBlobByIdentity with a user-assigned identity", async () => {
  const responseBody = bodyOf(await registry.importDevicesFromBlobByIdentity(input, output, uami));
  assert.equal(responseBody.identity.userAssignedIdentity, uami);
  const job = await finished(responseBody);
  assert.equal(job.status, "completed", job.failureReason);
});

test("exportDevicesToBlobByIdentity with the system-assigned identity", async () => {
  const job = await finished(bodyOf(await registry.exportDevicesToBlobByIdentity(output, true)));
  assert.equal(job.status, "completed", job.failureReason);
  assert.equal(job.excludeKeysInExport, true);
});

test("exportDevicesToBlobByIdentity with a user-assigned identity", async () => {
  const job = await finished(bodyOf(await registry.exportDevicesToBlobByIdentity(output, false, uami)));
  assert.equal(job.status, "completed", job.failureReason);
});

test("a user-assigned identity the hub does not have fails the job", async () => {
  const job = await finished(bodyOf(await registry.exportDevicesToBlobByIdentity(output, false, otherUami)));
  assert.equal(job.status, "failed");
  assert.match(job.failureReason, /not assigned to hub/);
  assert.ok(job.failureReason.includes(otherUami), job.failureReason);
});

test("listJobs lists them", async () => {
  const responseBody = bodyOf(await registry.listJobs());
  assert.ok(responseBody.length >= 7, `jobs ${responseBody.length}`);
});
