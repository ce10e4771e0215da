// Unmodified Azure IoT device SDK (MQTT, MQTT over WebSocket, HTTPS) against
// an Outpost hub: telemetry with application properties, twin reported and
// desired properties, and a direct method invoked by the service SDK.
// The Go driver (test/e2e/iothub_device_test.go) then checks that every
// message is on the hub's events stream with its properties.
//
// Environment: IOTHUB_CONNECTION_STRING (iothubowner), IOTHUB_DEVICE_ID,
// IOTHUB_DEVICE_CONNECTION_STRING, TELEMETRY_COUNT.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import device from "azure-iot-device";
import deviceMqtt from "azure-iot-device-mqtt";
import deviceHttp from "azure-iot-device-http";
import iothub from "azure-iothub";
import { ARM_SCOPE, armEndpoint, credential, requireEnv } from "./lib/env.mjs";

const { Client: DeviceClient, Message } = device;
const { Mqtt, MqttWs } = deviceMqtt;
const { Http } = deviceHttp;
const deviceId = requireEnv("IOTHUB_DEVICE_ID");
const deviceCS = requireEnv("IOTHUB_DEVICE_CONNECTION_STRING");
const serviceCS = requireEnv("IOTHUB_CONNECTION_STRING");
const count = Number(requireEnv("TELEMETRY_COUNT"));
const registry = iothub.Registry.fromConnectionString(serviceCS);
const service = iothub.Client.fromConnectionString(serviceCS);
const clients = [];

after(async () => {
  for (const c of clients) await c.close().catch(() => {});
});

function message(transport, i) {
  const m = new Message(JSON.stringify({ transport, i, temp: 20 + (i % 10) }));
  m.messageId = `${transport}-${i}`;
  m.contentType = "application/json";
  m.contentEncoding = "utf-8";
  m.properties.add("transport", transport);
  m.properties.add("seq", String(i));
  return m;
}

async function sendAll(client, transport, n, parallel) {
  for (let i = 0; i < n; i += parallel) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + parallel); j++) batch.push(client.sendEvent(message(transport, j)));
    await Promise.all(batch);
  }
}

test("MQTT: telemetry, twin and a direct method", async () => {
  const client = DeviceClient.fromConnectionString(deviceCS, Mqtt);
  clients.push(client);
  await client.open();
  await sendAll(client, "mqtt", count, 50);

  // Twin: reported from the device, seen by the service.
  const twin = await client.getTwin();
  await new Promise((resolve, reject) =>
    twin.properties.reported.update({ firmware: "1.2.3", battery: 97 }, (err) => (err ? reject(err) : resolve())),
  );
  const serviceTwin = (await registry.getTwin(deviceId)).responseBody;
  assert.equal(serviceTwin.properties.reported.firmware, "1.2.3");
  assert.equal(serviceTwin.properties.reported.battery, 97);

  // Desired from the service, delivered to the device.
  const desired = new Promise((resolve) => {
    twin.on("properties.desired", (delta) => {
      if (delta.interval === 42) resolve(delta);
    });
  });
  await registry.updateTwin(deviceId, { properties: { desired: { interval: 42 } } }, "*");
  const delta = await desired;
  assert.equal(delta.interval, 42);
  assert.ok(delta.$version >= 1);

  // Direct method: the device answers, the service gets the answer.
  client.onDeviceMethod("reboot", (request, response) => {
    response.send(200, { rebooted: true, delay: request.payload.delay }, () => {});
  });
  await new Promise((r) => setTimeout(r, 200)); // the SDK subscribes asynchronously
  const result = await service.invokeDeviceMethod(deviceId, { methodName: "reboot", payload: { delay: 5 }, responseTimeoutInSeconds: 10 });
  assert.equal(result.result.status, 200);
  assert.deepEqual(result.result.payload, { rebooted: true, delay: 5 });

  // A method nobody listens to times out with IoT Hub's error.
  await assert.rejects(
    service.invokeDeviceMethod(deviceId, { methodName: "nobody", payload: {}, responseTimeoutInSeconds: 5 }),
  );
  // One connection per device, as in IoT Hub: close before the next transport
  // connects, or the two would take the device over from each other.
  await client.close();
});

test("MQTT: a cloud-to-device message reaches the device", async () => {
  const client = DeviceClient.fromConnectionString(deviceCS, Mqtt);
  clients.push(client);
  const received = new Promise((resolve) => {
    client.on("message", (msg) => {
      client.complete(msg, () => {});
      resolve(msg);
    });
  });
  await client.open();
  await new Promise((r) => setTimeout(r, 300)); // the SDK subscribes asynchronously
  const token = await credential().getToken(ARM_SCOPE);
  const res = await fetch(`${armEndpoint()}/outpost/iothubs/${requireEnv("IOTHUB_NAME")}/devices/${encodeURIComponent(deviceId)}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${token.token}`, "content-type": "application/json" },
    body: JSON.stringify({ data: "hello device", messageId: "c2d-1", properties: { color: "blue" } }),
  });
  assert.equal(res.status, 204, await res.text());
  const msg = await received;
  assert.equal(msg.data.toString(), "hello device");
  assert.equal(msg.messageId, "c2d-1");
  assert.equal(msg.properties.getValue("color"), "blue");
  await client.close();
});

test("MQTT over WebSocket: telemetry", async () => {
  const client = DeviceClient.fromConnectionString(deviceCS, MqttWs);
  clients.push(client);
  await client.open();
  await sendAll(client, "mqttws", 20, 10);
  await client.close();
});

test("HTTPS: telemetry", async () => {
  const client = DeviceClient.fromConnectionString(deviceCS, Http);
  clients.push(client);
  await client.open();
  await sendAll(client, "http", 20, 5);
  await client.close();
});

test("a wrong key is refused", async () => {
  const bad = deviceCS.replace(/SharedAccessKey=[^;]+/, "SharedAccessKey=" + Buffer.alloc(32, 7).toString("base64"));
  const client = DeviceClient.fromConnectionString(bad, Mqtt);
  await assert.rejects(client.open());
  await client.close().catch(() => {});
});
