// An IoT hub's built-in Event Hub-compatible endpoint read by the unmodified
// @azure/event-hubs consumer with the connection string the portal shows
// (Endpoint=sb://…/;SharedAccessKeyName=iothubowner;…;EntityPath=…): telemetry
// a device sends with azure-iot-device over MQTT (azure-iot-device-mqtt) and
// over AMQP (azure-iot-device-amqp) is read from the earliest position, each
// message once, with its body, application properties, message id and the
// iothub-connection-device-id system property.
// The Go driver is TestNPMAMQPBuiltInEndpoint (test/e2e/amqp_npm_test.go).
//
// A second test reads the same telemetry with a token credential whose
// principal holds Azure Event Hubs Data Receiver on the hub.
//
// Environment: IOTHUB_EVENTHUB_CONNECTION_STRING (the built-in endpoint, with
// EntityPath; nothing sent to the hub yet), IOTHUB_DEVICE_CONNECTION_STRING,
// IOTHUB_EVENTHUB_HOST and IOTHUB_EVENTHUB_NAME (the endpoint's namespace host
// and event hub, for the token credential), and the AZURE_* variables.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { EventHubConsumerClient, earliestEventPosition } from "@azure/event-hubs";
import device from "azure-iot-device";
import deviceMqtt from "azure-iot-device-mqtt";
import deviceAmqp from "azure-iot-device-amqp";
import { credential, requireEnv } from "./lib/env.mjs";

const { Client: DeviceClient, Message } = device;
const eventHubCS = requireEnv("IOTHUB_EVENTHUB_CONNECTION_STRING");
const deviceCS = requireEnv("IOTHUB_DEVICE_CONNECTION_STRING");
const deviceId = /(?:^|;)DeviceId=([^;]+)/i.exec(deviceCS)?.[1];
const perTransport = 3;
// Fail fast rather than back off for minutes when the server misbehaves.
const noRetry = { shouldRetry: () => false, nextRetryTimeout: () => 0 };

const clients = [];
after(async () => {
  for (const c of clients) await c.close().catch(() => {});
});

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function sendTelemetry(transportName, Transport) {
  const client = DeviceClient.fromConnectionString(deviceCS, Transport);
  clients.push(client);
  client.setRetryPolicy(noRetry);
  await withTimeout(client.open(), 15000, `${transportName} device open`);
  for (let i = 0; i < perTransport; i++) {
    const m = new Message(JSON.stringify({ transport: transportName, i }));
    m.messageId = `${transportName}-${i}`;
    m.properties.add("transport", transportName);
    m.properties.add("seq", String(i));
    await withTimeout(client.sendEvent(m), 10000, `${transportName} sendEvent ${i}`);
  }
  // One connection per device at a time, as in IoT Hub.
  await client.close();
}

test("telemetry over MQTT and AMQP is on the built-in endpoint", { timeout: 60000 }, async () => {
  assert.ok(deviceId, "IOTHUB_DEVICE_CONNECTION_STRING has no DeviceId");
  await sendTelemetry("mqtt", deviceMqtt.Mqtt);
  await sendTelemetry("amqp", deviceAmqp.Amqp);

  const consumer = new EventHubConsumerClient("$Default", eventHubCS, {
    retryOptions: { maxRetries: 1, retryDelayInMs: 200, timeoutInMs: 10000 },
  });
  clients.push(consumer);
  const partitionIds = await consumer.getPartitionIds();
  assert.ok(partitionIds.length >= 2, `partition ids ${partitionIds}`);

  const want = 2 * perTransport;
  const events = [];
  await withTimeout(
    new Promise((resolve, reject) => {
      let settle;
      const subscription = consumer.subscribe(
        {
          async processEvents(batch, context) {
            for (const e of batch) events.push(Object.assign(e, { partitionId: context.partitionId }));
            // Keep reading a second past the last expected message, so that a
            // duplicate would be seen.
            if (!settle && events.length >= want) settle = setTimeout(() => subscription.close().then(resolve, reject), 1000);
          },
          async processError(err, context) {
            subscription.close().catch(() => {});
            reject(new Error(`processError (partition ${context.partitionId}): ${err?.code ?? err?.name}: ${err?.message}`));
          },
        },
        { startPosition: earliestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 1 },
      );
    }),
    30000,
    `reading ${want} messages (read ${events.length})`,
  );

  const got = events.map((e) => ({ id: e.messageId, body: e.body, props: e.properties, partition: e.partitionId }));
  assert.equal(events.length, want, JSON.stringify(got));
  for (const transport of ["mqtt", "amqp"]) {
    for (let i = 0; i < perTransport; i++) {
      const matches = events.filter((e) => e.messageId === `${transport}-${i}`);
      assert.equal(matches.length, 1, `${transport}-${i} read ${matches.length} times: ${JSON.stringify(got)}`);
      const e = matches[0];
      assert.deepEqual(e.body, { transport, i }, `${transport}-${i} body`);
      assert.equal(e.properties?.transport, transport, `${transport}-${i} properties ${JSON.stringify(e.properties)}`);
      assert.equal(e.properties?.seq, String(i), `${transport}-${i} properties ${JSON.stringify(e.properties)}`);
      assert.equal(e.systemProperties?.["iothub-connection-device-id"], deviceId, JSON.stringify(e.systemProperties));
      assert.equal(typeof e.sequenceNumber, "number");
      assert.match(e.offset, /^\d+$/);
      assert.ok(e.enqueuedTimeUtc instanceof Date);
    }
  }
  // Per device, one partition, in the order each transport sent them.
  for (const transport of ["mqtt", "amqp"]) {
    const mine = events.filter((e) => e.properties?.transport === transport);
    assert.deepEqual(mine.map((e) => e.properties.seq), ["0", "1", "2"], `${transport} order`);
  }
  assert.equal(new Set(events.map((e) => e.partitionId)).size, 1, "one device's messages share a partition");
});

test("a token credential with Azure Event Hubs Data Receiver on the hub reads the same telemetry", { timeout: 60000 }, async () => {
  const consumer = new EventHubConsumerClient("$Default", requireEnv("IOTHUB_EVENTHUB_HOST"), requireEnv("IOTHUB_EVENTHUB_NAME"), credential(), {
    retryOptions: { maxRetries: 1, retryDelayInMs: 200, timeoutInMs: 10000 },
  });
  clients.push(consumer);
  const want = 2 * perTransport;
  const events = [];
  await withTimeout(
    new Promise((resolve, reject) => {
      let done = false;
      const subscription = consumer.subscribe(
        {
          async processEvents(batch) {
            events.push(...batch);
            if (!done && events.length >= want) {
              done = true;
              subscription.close().then(resolve, reject);
            }
          },
          async processError(err, context) {
            if (done) return;
            done = true;
            subscription.close().catch(() => {});
            reject(new Error(`processError (partition ${context.partitionId}): ${err?.code ?? err?.name}: ${err?.message}`));
          },
        },
        { startPosition: earliestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 1 },
      );
    }),
    30000,
    `reading ${want} messages with a token credential (read ${events.length})`,
  );
  assert.equal(events.length, want);
  assert.ok(events.every((e) => e.systemProperties?.["iothub-connection-device-id"] === deviceId));
});
