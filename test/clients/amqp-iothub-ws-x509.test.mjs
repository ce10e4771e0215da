// Cloud-to-device with delivery feedback over AMQP WebSocket (the
// service's AmqpWs and the device's AmqpWs) and for an X.509 device over
// AMQP (TLS client certificate, no CBS): a completed message gives
// Success feedback, a rejected one Rejected.
//
// Env: SERVICE_CS, DEVICE_ID, DEVICE_CS, X509_CS, X509_CERT, X509_KEY.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import iothub from "azure-iothub";
import device from "azure-iot-device";
import deviceAmqp from "azure-iot-device-amqp";

const { Client: DeviceClient, Message } = device;
const noRetry = { shouldRetry: () => false, nextRetryTimeout: () => 0 };
const closers = [];
after(async () => { for (const c of closers) await c.close().catch(() => {}); });
const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, r) => setTimeout(() => r(new Error(what + " timed out")), ms))]);
const cb = (f) => new Promise((res, rej) => f((e, r) => (e ? rej(e) : res(r))));

async function roundTrip(serviceTransport, deviceCS, Transport, deviceId, opts) {
  const service = iothub.Client.fromConnectionString(process.env.SERVICE_CS, serviceTransport);
  service.setRetryPolicy(noRetry);
  closers.push(service);
  await withTimeout(service.open(), 15000, "service open");
  const fbRecv = await withTimeout(cb((c) => service.getFeedbackReceiver(c)), 15000, "feedback receiver");
  const records = [];
  fbRecv.on("message", (msg) => { records.push(...JSON.parse(msg.data.toString())); fbRecv.complete(msg, () => {}); });

  const client = DeviceClient.fromConnectionString(deviceCS, Transport);
  closers.push(client);
  client.setRetryPolicy(noRetry);
  if (opts) client.setOptions(opts);
  const got = [];
  client.on("message", (msg) => {
    got.push(msg);
    if (msg.data.toString() === "reject me") client.reject(msg, () => {});
    else client.complete(msg, () => {});
  });
  await withTimeout(client.open(), 15000, "device open");
  await withTimeout(client.sendEvent(new Message("telemetry")), 10000, "sendEvent");
  await new Promise((r) => setTimeout(r, 500));
  const m1 = new Message("hello"); m1.messageId = "ok-" + deviceId; m1.ack = "full";
  const m2 = new Message("reject me"); m2.messageId = "rej-" + deviceId; m2.ack = "negative";
  await withTimeout(service.send(deviceId, m1), 10000, "send 1");
  await withTimeout(service.send(deviceId, m2), 10000, "send 2");
  const deadline = Date.now() + 20000;
  while (records.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const byId = Object.fromEntries(records.map((r) => [r.originalMessageId, r.statusCode]));
  assert.equal(byId["ok-" + deviceId], "Success", JSON.stringify(records));
  assert.equal(byId["rej-" + deviceId], "Rejected", JSON.stringify(records));
  assert.equal(got.length, 2);
  await client.close();
  await service.close();
}

test("AmqpWs service and device", { timeout: 60000 }, async () => {
  await roundTrip(iothub.AmqpWs, process.env.DEVICE_CS, deviceAmqp.AmqpWs, process.env.DEVICE_ID);
});

test("X.509 device over AMQP (TLS client certificate, no CBS)", { timeout: 60000 }, async () => {
  await roundTrip(iothub.Amqp, process.env.X509_CS, deviceAmqp.Amqp, "thumb-dev",
    { cert: fs.readFileSync(process.env.X509_CERT, "utf8"), key: fs.readFileSync(process.env.X509_KEY, "utf8") });
});
