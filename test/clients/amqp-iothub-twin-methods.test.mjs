// Device twins and direct methods over the AMQP device transports (Amqp
// and AmqpWs) of azure-iot-device-amqp: twin GET, a reported-property
// update the service reads back, a desired-property update the device is
// told of, and a direct method the service invokes.
//
// Env: SERVICE_CS (iothubowner), DEVICE_ID, DEVICE_CS.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import iothub from "azure-iothub";
import device from "azure-iot-device";
import deviceAmqp from "azure-iot-device-amqp";

const { Client: DeviceClient } = device;
const noRetry = { shouldRetry: () => false, nextRetryTimeout: () => 0 };
const closers = [];
after(async () => { for (const c of closers) await c.close().catch(() => {}); });
const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, r) => setTimeout(() => r(new Error(what + " timed out")), ms))]);

for (const [name, Transport] of [["amqp", deviceAmqp.Amqp], ["amqp-ws", deviceAmqp.AmqpWs]]) {
  test(`twin and direct methods over ${name}`, { timeout: 60000 }, async () => {
    const client = DeviceClient.fromConnectionString(process.env.DEVICE_CS, Transport);
    closers.push(client);
    client.setRetryPolicy(noRetry);
    await withTimeout(client.open(), 15000, "open");
    const twin = await withTimeout(client.getTwin(), 15000, "getTwin");
    assert.ok(twin.properties.desired, JSON.stringify(twin.properties));
    await withTimeout(new Promise((res, rej) => twin.properties.reported.update({ via: name }, (e) => (e ? rej(e) : res()))), 10000, "reported");
    const desired = new Promise((res) => twin.on("properties.desired", (d) => { if (d.color === name) res(d); }));
    client.onDeviceMethod("reboot", (req, resp) => resp.send(200, { rebooted: req.payload }, () => {}));
    await new Promise((r) => setTimeout(r, 500));

    const registry = iothub.Registry.fromConnectionString(process.env.SERVICE_CS);
    const t = await registry.getTwin(process.env.DEVICE_ID);
    assert.equal(t.responseBody.properties.reported.via, name);
    await registry.updateTwin(process.env.DEVICE_ID, { properties: { desired: { color: name } } }, "*");
    const d = await withTimeout(desired, 10000, "desired update");
    assert.equal(d.color, name);

    const svc = iothub.Client.fromConnectionString(process.env.SERVICE_CS);
    const r = await withTimeout(svc.invokeDeviceMethod(process.env.DEVICE_ID, { methodName: "reboot", payload: { in: 5 }, responseTimeoutInSeconds: 10 }), 15000, "invoke");
    assert.equal(r.result.status, 200);
    assert.deepEqual(r.result.payload, { rebooted: { in: 5 } });
    await client.close();
  });
}
