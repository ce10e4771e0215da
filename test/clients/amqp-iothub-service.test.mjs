// The unmodified azure-iothub service client (AMQP 1.0 over TLS on 5671, no
// SASL, CBS put-token with the iothubowner SAS) against an Outpost hub: a
// cloud-to-device message sent with ack 'full' and a message id reaches a
// device on the azure-iot-device MQTT transport and, in a second test, on the
// AMQP transport (azure-iot-device-amqp); the device completes it and the
// feedback receiver gets a batch naming the original message id with status
// 'Success'. A message for an unknown device fails with DeviceNotFoundError.
// The file notification receiver gets the notification of an upload made
// with the device SDK's uploadToBlob.
// The Go driver is TestNPMAMQPIoTHubService (test/e2e/amqp_npm_test.go).
//
// Environment: IOTHUB_CONNECTION_STRING (iothubowner), IOTHUB_DEVICE_ID,
// IOTHUB_DEVICE_CONNECTION_STRING, and optionally
// IOTHUB_UPLOAD_DEVICE_CONNECTION_STRING: another device of the same hub,
// whose file upload is configured with notifications on (the upload test is
// skipped without it; the Go driver always sets it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import iothub from "azure-iothub";
import device from "azure-iot-device";
import deviceMqtt from "azure-iot-device-mqtt";
import deviceAmqp from "azure-iot-device-amqp";
import { requireEnv } from "./lib/env.mjs";

const { Client: DeviceClient, Message } = device;
const serviceCS = requireEnv("IOTHUB_CONNECTION_STRING");
const deviceId = requireEnv("IOTHUB_DEVICE_ID");
const deviceCS = requireEnv("IOTHUB_DEVICE_CONNECTION_STRING");
const uploadCS = process.env.IOTHUB_UPLOAD_DEVICE_CONNECTION_STRING || "";
// Fail fast: the SDKs' default policy retries for up to four minutes.
const noRetry = { shouldRetry: () => false, nextRetryTimeout: () => 0 };

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const callback = (f) => new Promise((resolve, reject) => f((err, r) => (err ? reject(err) : resolve(r))));

const service = iothub.Client.fromConnectionString(serviceCS);
service.setRetryPolicy(noRetry);
const closers = [];
let feedbackReceiver;
// Feedback records by originalMessageId, and who waits for which.
const feedback = new Map();
const feedbackWaiters = new Map();
const feedbackBatches = [];

before(async () => {
  await withTimeout(service.open(), 15000, "service client open");
  feedbackReceiver = await withTimeout(callback((cb) => service.getFeedbackReceiver(cb)), 15000, "getFeedbackReceiver");
  feedbackReceiver.on("message", (msg) => {
    const text = msg.data?.toString() ?? "";
    feedbackBatches.push({ text, contentType: msg.contentType });
    let records = [];
    try {
      records = JSON.parse(text);
    } catch {
      // Kept in feedbackBatches; the waiting test reports it.
    }
    feedbackReceiver.complete(msg, () => {});
    for (const r of Array.isArray(records) ? records : []) {
      feedback.set(r.originalMessageId, r);
      feedbackWaiters.get(r.originalMessageId)?.(r);
    }
  });
});

after(async () => {
  for (const c of closers) await c.close().catch(() => {});
  await service.close().catch(() => {});
});

function feedbackFor(messageId) {
  if (feedback.has(messageId)) return Promise.resolve(feedback.get(messageId));
  return new Promise((resolve) => feedbackWaiters.set(messageId, resolve));
}

async function c2dRoundTrip(transportName, Transport) {
  const client = DeviceClient.fromConnectionString(deviceCS, Transport);
  closers.push(client);
  client.setRetryPolicy(noRetry);
  const errors = [];
  client.on("error", (err) => errors.push(err));
  const received = new Promise((resolve) => {
    client.on("message", (msg) => {
      client.complete(msg, (err) => resolve({ msg, completeError: err }));
    });
  });
  await withTimeout(client.open(), 15000, `${transportName} device open`);
  await new Promise((r) => setTimeout(r, 500)); // the SDKs subscribe to C2D after open, asynchronously

  const messageId = `c2d-${transportName}-${Date.now()}`;
  const m = new Message(`hello over ${transportName}`);
  m.messageId = messageId;
  m.ack = "full";
  m.properties.add("color", "blue");
  await withTimeout(service.send(deviceId, m), 10000, `service send to ${deviceId}`);

  const { msg, completeError } = await withTimeout(received, 15000, `the ${transportName} device receiving the message`);
  assert.equal(completeError ?? null, null, `complete: ${completeError}`);
  assert.equal(msg.data.toString(), `hello over ${transportName}`);
  assert.equal(msg.messageId, messageId);
  assert.equal(msg.properties.getValue("color"), "blue");
  assert.deepEqual(errors.map(String), []);

  const record = await withTimeout(
    feedbackFor(messageId),
    30000,
    `feedback for ${messageId} (batches so far: ${JSON.stringify(feedbackBatches)})`,
  );
  assert.equal(record.statusCode, "Success", JSON.stringify(record));
  assert.equal(record.deviceId, deviceId, JSON.stringify(record));
  assert.ok(!Number.isNaN(Date.parse(record.enqueuedTimeUtc)), JSON.stringify(record));
  await client.close();
}

test("C2D with ack 'full' to an MQTT device; feedback 'Success'", { timeout: 60000 }, async () => {
  await c2dRoundTrip("mqtt", deviceMqtt.Mqtt);
});

test("C2D with ack 'full' to an AMQP device; feedback 'Success'", { timeout: 60000 }, async () => {
  await c2dRoundTrip("amqp", deviceAmqp.Amqp);
});

test("C2D to an unknown device fails with DeviceNotFoundError", { timeout: 30000 }, async () => {
  const m = new Message("nobody home");
  m.messageId = "c2d-unknown";
  await assert.rejects(withTimeout(service.send("no-such-device-here", m), 15000, "send to an unknown device"), (err) => {
    assert.equal(err?.name, "DeviceNotFoundError", `${err?.name}: ${err?.message}`);
    return true;
  });
  // The sender link still works after the refusal.
  const ok = new Message("still there");
  ok.messageId = "c2d-after-refusal";
  await withTimeout(service.send(deviceId, ok), 10000, "send after a refusal");
});

test(
  "the file notification receiver gets an uploadToBlob notification",
  { timeout: 60000, skip: uploadCS ? false : "IOTHUB_UPLOAD_DEVICE_CONNECTION_STRING is not set" },
  async () => {
    const uploadDeviceId = /(?:^|;)DeviceId=([^;]+)/i.exec(uploadCS)?.[1];
    assert.ok(uploadDeviceId, "IOTHUB_UPLOAD_DEVICE_CONNECTION_STRING has no DeviceId");
    const receiver = await withTimeout(
      callback((cb) => service.getFileNotificationReceiver(cb)),
      15000,
      "getFileNotificationReceiver",
    );
    const blobName = `amqp/notify-${Date.now()}.txt`;
    const notified = new Promise((resolve) => {
      receiver.on("message", (msg) => {
        let n;
        try {
          n = JSON.parse(msg.data.toString());
        } catch {
          n = { unparsable: msg.data?.toString() };
        }
        receiver.complete(msg, () => {});
        if (n.blobName === `${uploadDeviceId}/${blobName}`) resolve(n);
      });
    });

    const client = DeviceClient.fromConnectionString(uploadCS, deviceMqtt.Mqtt);
    closers.push(client);
    client.setRetryPolicy(noRetry);
    await withTimeout(client.open(), 15000, "upload device open");
    const data = Buffer.from("uploaded for the AMQP file notification test\n");
    await withTimeout(client.uploadToBlob(blobName, Readable.from([data]), data.length), 30000, "uploadToBlob");
    await client.close();

    const n = await withTimeout(notified, 20000, `the file notification for ${blobName}`);
    assert.equal(n.deviceId, uploadDeviceId);
    assert.equal(n.blobSizeInBytes, data.length);
    assert.ok(String(n.blobUri).endsWith(`/${uploadDeviceId}/${blobName}`), n.blobUri);
    assert.ok(!Number.isNaN(Date.parse(n.enqueuedTimeUtc)), JSON.stringify(n));
  },
);
